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
  /** Where paths the cache lacks are pulled through from, in the order they are asked. */
  upstreams: UpstreamConfig[];
  /** Seconds an unused path pulled from an upstream is kept; null = the server default. */
  upstream_retention_period: number | null;
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
  /** Replaces the whole list; [] turns pull-through off. */
  upstreams?: UpstreamSetting[];
  /** Seconds; 0 = keep forever; null = the server default. */
  upstream_retention_period?: number | null;
  /** PATCH only. */
  regenerate_keypair?: boolean;
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
