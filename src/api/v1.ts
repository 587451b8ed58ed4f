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
  /** PATCH only. */
  regenerate_keypair?: boolean;
}
