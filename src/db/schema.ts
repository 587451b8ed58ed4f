/**
 * Kysely table types. Timestamps are unix milliseconds (BIGINT) and booleans
 * are 0/1 integers so the same queries run unchanged on SQLite and PostgreSQL.
 */
import type { Generated, Insertable, Selectable } from 'kysely';

export interface CacheTable {
  id: Generated<number>;
  name: string;
  /** Nix secret key `name:base64(seed‖pub)`; signs this cache's narinfos. */
  signing_key: string;
  public_key: string;
  is_public: number;
  priority: number;
  store_dir: string;
  /** JSON array of key names (e.g. `cache.nixos.org-1`) whose paths clients skip on push. */
  upstream_key_names: string;
  /** Seconds an unused path is kept; NULL = the server default. */
  retention_seconds: number | null;
  /** JSON array of StoredUpstream (core/upstreams.ts), in the order they are asked; '[]' = no pull-through. */
  upstreams: Generated<string>;
  /** Seconds an unused path that came from an upstream is kept; NULL = the server default. */
  upstream_retention_seconds: number | null;
  created_at: number;
}

/** A NAR, global and content-addressed: stored once whatever the number of caches that hold it. */
export interface NarTable {
  id: Generated<number>;
  /** `sha256:<nix32>` of the uncompressed NAR. */
  nar_hash: string;
  nar_size: number;
  /** `sha256:<nix32>` of the bytes served at `nar/<file_hash>.nar.zst` (the chunks' zstd frames, concatenated). */
  file_hash: string;
  file_size: number;
  chunk_count: number;
  created_at: number;
}

/** A content-defined chunk, global, keyed by the SHA-256 of its uncompressed bytes. */
export interface ChunkTable {
  id: Generated<number>;
  /** sha256 hex of the uncompressed chunk. */
  hash: string;
  size: number;
  /** Bytes of the stored zstd frame and their sha256 hex (checked on every read). */
  stored_size: number;
  stored_hash: string;
  storage_key: string;
  created_at: number;
}

/** Ordered chunk list of a NAR; a chunk's reference count is the number of rows that name it. */
export interface NarChunkTable {
  nar_id: number;
  seq: number;
  chunk_id: number;
}

/** A store path in one cache. Inserted only once its NAR is complete and verified. */
export interface ObjectTable {
  id: Generated<number>;
  cache_id: number;
  store_path_hash: string;
  store_path: string;
  nar_id: number;
  /** JSON array of reference base names, sorted. */
  references: string;
  deriver: string | null;
  ca: string | null;
  /** JSON array of signatures supplied by the pusher (served alongside the cache's own). */
  client_sigs: string;
  /** The cache key's signature of this path, and the public key it was made with (re-signed when the key changes). */
  server_sig: string | null;
  server_sig_key: string | null;
  /** `sub` of the token that pushed it. */
  created_by: string | null;
  created_at: number;
  last_accessed_at: number;
  /** Set when the path was pulled through from an upstream (its label, e.g. its URL or `cache:base`); NULL for pushed paths. */
  upstream: string | null;
}

/**
 * What the cache's upstreams answered for a store path it lacks, shared by every replica until
 * `expires_at`: a verified narinfo (its NAR is fetched when a client asks for it) or, with
 * `narinfo` NULL, a miss.
 */
export interface UpstreamLookupTable {
  cache_id: number;
  store_path_hash: string;
  upstream: string | null;
  narinfo: string | null;
  nar_hash: string | null;
  expires_at: number;
}

/**
 * A NAR uploaded by `nix copy` under its own file name (`nar/<filehash>.nar.xz`)
 * whose narinfo has not arrived yet; scoped to the cache it was uploaded to.
 */
export interface NarUploadTable {
  cache_id: number;
  file_name: string;
  nar_id: number;
  created_at: number;
}

/** A chunk uploaded for a cache through the chunk protocol, not yet part of a committed NAR. */
export interface ChunkStagingTable {
  cache_id: number;
  chunk_id: number;
  created_at: number;
}

export interface RevokedTokenTable {
  jti: string;
  revoked_at: number;
  /** When the token would have expired anyway; rows past it can be purged. */
  expires_at: number | null;
}

export interface IssuedTokenTable {
  jti: string;
  sub: string;
  /** JSON of the Loft claim (cache patterns and permissions). */
  claims: string;
  created_by: string | null;
  created_at: number;
  expires_at: number;
}

export interface LeaseTable {
  name: string;
  holder: string;
  expires_at: number;
}

export interface Database {
  caches: CacheTable;
  nars: NarTable;
  chunks: ChunkTable;
  nar_chunks: NarChunkTable;
  objects: ObjectTable;
  nar_uploads: NarUploadTable;
  chunk_stagings: ChunkStagingTable;
  revoked_tokens: RevokedTokenTable;
  issued_tokens: IssuedTokenTable;
  leases: LeaseTable;
  upstream_lookups: UpstreamLookupTable;
}

export type CacheRow = Selectable<CacheTable>;
export type NarRow = Selectable<NarTable>;
export type ChunkRow = Selectable<ChunkTable>;
export type ObjectRow = Selectable<ObjectTable>;
export type NewObject = Insertable<ObjectTable>;
