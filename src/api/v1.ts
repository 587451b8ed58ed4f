/**
 * The JSON shapes of `/_api/v1` that the server sends and the client reads
 * (docs/api.md). One definition, imported by both sides.
 */

/** A cache as the API shows it; the secret key never leaves the server. */
export interface CacheConfig {
  name: string;
  /** Nix public key `name:base64`, for `trusted-public-keys`: the newest active signing key. */
  public_key: string;
  /** Every signing key of the cache, oldest first; each active one signs every narinfo. */
  signing_keys: SigningKeyInfo[];
  is_public: boolean;
  priority: number;
  store_dir: string;
  upstream_cache_key_names: string[];
  /** Seconds; null = the server default. */
  retention_period: number | null;
  /** Where paths the cache lacks are pulled through from, in the order they are asked. */
  upstreams: UpstreamConfig[];
  /** Seconds an unused path pulled from an upstream is kept; null = the server default. */
  upstream_retention_period: number | null;
  created_at: string;
  /** The substituter URL. */
  url: string;
}

/** A cache signing key as the API shows it: the public half only. */
export interface SigningKeyInfo {
  name: string;
  public_key: string;
  state: 'active' | 'retired';
  created_at: string;
  retired_at: string | null;
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

/**
 * What a push did to the path: `created` it, found it `unchanged` (same NAR and references; the
 * first upload is kept), or `replaced` its NAR (`?replace=true`, needs `delete`). docs/api.md.
 */
export type PathOutcome = 'created' | 'unchanged' | 'replaced';

/** The answer of `POST /_api/v1/nar`. */
export interface NarCommitResult {
  kind: 'uploaded' | 'deduplicated';
  outcome: PathOutcome;
  nar_size: number;
}

/** The POST/PATCH body of /_api/v1/cache-config/{cache}; absent fields are left alone. */
export interface CacheSettingsBody {
  is_public?: boolean;
  priority?: number;
  store_dir?: string;
  upstream_cache_key_names?: string[];
  /** Seconds; 0 = keep forever; null = the server default. */
  retention_period?: number | null;
  /** Replaces the whole list; [] turns pull-through off. */
  upstreams?: UpstreamSetting[];
  /** Seconds; 0 = keep forever; null = the server default. */
  upstream_retention_period?: number | null;
  /** PATCH only. */
  regenerate_keypair?: boolean;
  /**
   * Write-only Nix secret key(s) `name:base64` (whitespace-separated). POST: the cache's keys instead
   * of a generated one; PATCH: they replace every key (the others are retired).
   */
  signing_key?: string;
  /** PATCH only: secret key(s) that sign alongside the current ones (rotation). */
  add_signing_key?: string;
  /** PATCH only: the server generates a key (the next name) that signs alongside the current ones. */
  generate_signing_key?: boolean;
  /** PATCH only: the name of a key that stops signing. */
  retire_signing_key?: string;
}

/** GET /_api/v1/whoami: the caller as the server sees its token. */
export interface WhoAmI {
  sub: string;
  anonymous: boolean;
  admin: boolean;
  expires_at: string | null;
}

/** One cache on the dashboard's overview (GET /_api/v1/dashboard/caches). */
export interface CacheSummary {
  name: string;
  is_public: boolean;
  paths: number;
  nar_bytes: number;
  stored_bytes: number;
  /** 1 - stored/NAR bytes; null for an empty cache. */
  dedup_saving: number | null;
  /** narinfo lookups over the last 7 days. */
  narinfo_hits: number;
  narinfo_misses: number;
  hit_rate: number | null;
  last_push_at: string | null;
}

/** One hour of a cache's history (GET /_api/v1/caches/{cache}/history). */
export interface UsagePoint {
  hour: string;
  narinfo_hits: number;
  narinfo_misses: number;
  nar_downloads: number;
  bytes_served: number;
  bytes_received: number;
  pushes_ok: number;
  pushes_failed: number;
  /** Storage size last measured at or before this hour; null before the first measurement. */
  paths: number | null;
  nar_bytes: number | null;
  stored_bytes: number | null;
}

/** The paths one token pushed within one flush interval (GET /_api/v1/caches/{cache}/pushes). */
export interface PushEntry {
  at: string;
  sub: string;
  via: string;
  paths: number;
  /** Request body bytes received (NARs, chunks). */
  bytes: number;
}

export interface PathSearchHit {
  store_path: string;
  store_path_hash: string;
  nar_size: number;
  created_at: string;
}

/** Garbage collection of one hour (GET /_api/v1/gc/history). */
export interface GcHour {
  hour: string;
  passes: number;
  failures: number;
  paths_expired: number;
  nars_deleted: number;
  chunks_deleted: number;
  bytes_freed: number;
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
  /**
   * Stored bytes of the deleted chunks' frames. They are dead from now on; their space goes back to
   * the storage when compaction rewrites their packs and deletes the old ones (the `pack_*` fields).
   */
  bytes_freed: number;
  /** Stale upload records: `nix copy` NARs whose narinfo never came, chunk stagings never committed. */
  uploads: number;
  stagings: number;
  /** Storage objects no pack row names (left by killed uploads). */
  orphan_blobs: number;
  /** Compaction: packs whose live chunks were copied into new packs, packs retired (no longer read), and packs retired by an earlier pass now deleted, with their bytes. */
  packs_rewritten: number;
  packs_retired: number;
  packs_deleted: number;
  pack_bytes_deleted: number;
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

/** An HTTP binary cache (cache.nixos.org, another Loft, …) as the API shows it. */
export interface HttpUpstreamConfig {
  url: string;
  /** `name:base64` keys; a narinfo is accepted only with a signature by one of them (or a CA that proves its path). */
  public_keys: string[];
  /** Lower is asked first (like Nix's priority); equal priorities keep the list order. */
  priority?: number;
  /** Whether credentials are stored for it (they are never returned). */
  has_credentials: boolean;
}

/** Another cache on the same server, whose paths the cache serves without copying their data. */
export interface LocalUpstreamConfig {
  cache: string;
  priority?: number;
}

export type UpstreamConfig = HttpUpstreamConfig | LocalUpstreamConfig;

/**
 * An upstream as set through the API. Credentials are write-only: `bearer_token` is sent as
 * `Authorization: Bearer`, `basic_auth` ("user:password", as in a netrc) as Basic. An entry for
 * a URL that already has credentials keeps them unless new ones (or `null`) are given.
 */
export type UpstreamSetting =
  | { url: string; public_keys: string[]; priority?: number; bearer_token?: string | null; basic_auth?: string | null }
  | LocalUpstreamConfig;
