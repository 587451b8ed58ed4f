/**
 * The JSON shapes of `/_api/v1` that the server sends and the client reads
 * (docs/api.md). One definition, imported by both sides.
 */

/** A cache as the API shows it; the secret key never leaves the server. */
export interface CacheConfig {
  name: string;
  /** Nix public key `name:base64`, for `trusted-public-keys`. */
  public_key: string;
  is_public: boolean;
  priority: number;
  store_dir: string;
  upstream_cache_key_names: string[];
  /** Seconds; null = the server default. */
  retention_period: number | null;
  created_at: string;
  /** The substituter URL. */
  url: string;
}

/** A path's metadata as the push API takes it (`X-Loft-Nar-Info`, `POST /_api/v1/nar`). */
export interface NarInfoJson {
  cache: string;
  store_path: string;
  nar_hash: string;
  nar_size: number;
  references: string[];
  deriver?: string | null;
  sigs?: string[];
  ca?: string | null;
}

/** The POST/PATCH body of /_api/v1/cache-config/{cache}; absent fields are left alone. */
export interface CacheSettingsBody {
  is_public?: boolean;
  priority?: number;
  store_dir?: string;
  upstream_cache_key_names?: string[];
  /** Seconds; 0 = keep forever; null = the server default. */
  retention_period?: number | null;
  /** PATCH only. */
  regenerate_keypair?: boolean;
}

/** The POST body of /_api/v1/gc: one cache (default: every cache, admin only), or a dry run. */
export interface GcRunBody {
  cache?: string;
  /** Report what would go, change nothing. */
  dry_run?: boolean;
}

/** What a garbage-collection pass did in one cache. */
export interface GcCacheReport {
  cache: string;
  /** Paths collected (or, in a dry run, that would be). */
  paths: number;
  /** The first 1000 of them, sorted in a dry run. */
  store_paths: string[];
  /** Compressed bytes of the NARs no path holds any more once these paths are gone. */
  nar_bytes: number;
}

/** The answer of POST /_api/v1/gc. */
export interface GcReport {
  dry_run: boolean;
  started_at: string;
  duration_ms: number;
  caches: GcCacheReport[];
  /** Totals over `caches`. */
  paths: number;
  nar_bytes: number;
  /** What the sweep freed (0 in a dry run, which sweeps nothing): NARs no path holds, chunks no NAR uses. */
  nars: number;
  chunks: number;
  /** Stored bytes returned to the storage (the deleted chunks' frames). */
  bytes_freed: number;
  /** Stale upload records: `nix copy` NARs whose narinfo never came, chunk stagings never committed. */
  uploads: number;
  stagings: number;
  /** Blobs no chunk row names (left by killed uploads). */
  orphan_blobs: number;
}

/** One recorded pass, as GET /_api/v1/gc/passes lists them (newest first). */
export interface GcPass {
  id: number;
  started_at: string;
  duration_ms: number;
  /** `timer` (the periodic job) or `api` (POST /_api/v1/gc, `loft gc`). */
  trigger: 'timer' | 'api';
  /** A cache name, or `*` for every cache. */
  scope: string;
  paths: number;
  nars: number;
  chunks: number;
  bytes_freed: number;
}

export interface GcPassesResponse {
  passes: GcPass[];
}

/** The PUT body of /_api/v1/caches/{cache}/pins/{name}. */
export interface PinBody {
  store_path: string;
  /** Keep the pin's last N targets (the current one always). */
  keep_revisions?: number | null;
  /** Keep each target for D days after it was pinned. */
  keep_days?: number | null;
}

/** A pin as GET /_api/v1/caches/{cache}/pins lists it. */
export interface Pin {
  name: string;
  /** The current target. */
  store_path: string;
  keep_revisions: number | null;
  keep_days: number | null;
  created_by: string | null;
  created_at: string;
  /** Every target it still keeps, newest (current) first. */
  revisions: { store_path: string; pinned_at: string }[];
}

export interface PinsResponse {
  pins: Pin[];
}

/** The answer of POST /_api/v1/delete-paths. */
export interface DeletePathsResult {
  deleted: number;
  /** With `cascade`: the store paths deleted besides those asked for (their referrers, at any depth). */
  cascaded: string[];
}
