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
