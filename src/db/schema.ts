/**
 * Kysely table types. Timestamps are unix milliseconds (BIGINT) and booleans
 * are 0/1 integers so the same queries run unchanged on SQLite and PostgreSQL.
 */
import type { Generated, Insertable, Selectable } from 'kysely';

export interface CacheTable {
  id: Generated<number>;
  name: string;
  /**
   * The newest active key of cache_keys (Nix secret key `name:base64(seed‖pub)`, and its public
   * key), mirrored for display and for replicas of earlier versions during a rolling upgrade.
   * cache_keys is the source of truth.
   */
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

export type CacheKeyState = 'active' | 'retired';

/** A cache's narinfo signing key. Every active key signs every narinfo; a retired key signs nothing. */
export interface CacheKeyTable {
  id: Generated<number>;
  cache_id: number;
  /** The key name (before the ':'), unique per cache: Nix picks the key for a Sig line by it. */
  name: string;
  /** Nix secret key `name:base64(seed‖pub)`; never leaves the server. */
  secret_key: string;
  public_key: string;
  state: CacheKeyState;
  created_at: number;
  retired_at: number | null;
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
  /** The pack holding the frame, at `pack_offset` (`stored_size` bytes); see docs/storage.md. */
  pack_id: number;
  pack_offset: number;
  created_at: number;
}

/** One storage object holding many chunk frames back to back. */
export interface PackTable {
  id: Generated<number>;
  storage_key: string;
  size: number;
  created_at: number;
  /** Compaction moved its live chunks elsewhere; the object is deleted once readers are done with it. */
  retired_at: number | null;
}

/** The `.ls` JSON of a NAR, built once at ingest (absent for NARs ingested before, or too large). */
export interface NarListingTable {
  nar_id: number;
  listing: string;
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
  /**
   * The cache keys' signatures of this path, one per line, and the public keys they were made
   * with, line for line: made once per path and key, re-made only for a key added since.
   */
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

/** One reference of a path, by the referenced path's hash: closure walks are recursive queries over these. */
export interface ObjectRefTable {
  object_id: number;
  cache_id: number;
  ref_hash: string;
}

/** A named pin of a cache (`loft pin add`); what it keeps is in pin_revisions. */
export interface PinTable {
  id: Generated<number>;
  cache_id: number;
  name: string;
  /** Keep the last N targets; NULL = no count limit. */
  keep_revisions: number | null;
  /** Keep each target for D days after it was replaced; NULL = no age limit. */
  keep_days: number | null;
  created_by: string | null;
  created_at: number;
}

/** A target a pin has had; the newest is the current one. Each keeps its path's closure from GC. */
export interface PinRevisionTable {
  /** Increases with every pin: the highest of a pin is its current target. */
  id: Generated<number>;
  pin_id: number;
  cache_id: number;
  store_path_hash: string;
  store_path: string;
  pinned_at: number;
}

/** A garbage-collection pass that ran (dry runs are not recorded). */
export interface GcPassTable {
  id: Generated<number>;
  started_at: number;
  duration_ms: number;
  /** `timer` or `api`. */
  trigger: string;
  /** A cache name, or `*` for every cache. */
  scope: string;
  paths: number;
  nars: number;
  chunks: number;
  bytes_freed: number;
  /** JSON of the whole report (api/v1.ts GcReport). */
  report: string;
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

/** Per cache and hour: counters added to by every replica's batches, and the storage size last seen. */
export interface UsageHourlyTable {
  cache_id: number;
  /** Unix ms at the start of the hour (UTC). */
  hour: number;
  narinfo_hits: Generated<number>;
  narinfo_misses: Generated<number>;
  nar_downloads: Generated<number>;
  bytes_served: Generated<number>;
  bytes_received: Generated<number>;
  /** Push requests answered 2xx / refused or failed. */
  pushes_ok: Generated<number>;
  pushes_failed: Generated<number>;
  paths: number | null;
  nar_bytes: number | null;
  stored_bytes: number | null;
}

/** The paths one token pushed to a cache within one flush interval of one replica. */
export interface PushLogTable {
  id: Generated<number>;
  cache_id: number;
  at: number;
  sub: string;
  via: string;
  paths: number;
  bytes: number;
}

/** Garbage-collection passes per hour and what they removed. */
export interface GcHourlyTable {
  hour: number;
  passes: Generated<number>;
  failures: Generated<number>;
  paths_expired: Generated<number>;
  nars_deleted: Generated<number>;
  chunks_deleted: Generated<number>;
  bytes_freed: Generated<number>;
}

export interface Database {
  caches: CacheTable;
  cache_keys: CacheKeyTable;
  nars: NarTable;
  chunks: ChunkTable;
  packs: PackTable;
  nar_listings: NarListingTable;
  nar_chunks: NarChunkTable;
  objects: ObjectTable;
  object_refs: ObjectRefTable;
  pins: PinTable;
  pin_revisions: PinRevisionTable;
  gc_passes: GcPassTable;
  nar_uploads: NarUploadTable;
  chunk_stagings: ChunkStagingTable;
  revoked_tokens: RevokedTokenTable;
  issued_tokens: IssuedTokenTable;
  leases: LeaseTable;
  usage_hourly: UsageHourlyTable;
  push_log: PushLogTable;
  gc_hourly: GcHourlyTable;
  upstream_lookups: UpstreamLookupTable;
}

export type CacheRow = Selectable<CacheTable>;
export type CacheKeyRow = Selectable<CacheKeyTable>;
export type NarRow = Selectable<NarTable>;
export type ChunkRow = Selectable<ChunkTable>;
export type PackRow = Selectable<PackTable>;
export type ObjectRow = Selectable<ObjectTable>;
export type NewObject = Insertable<ObjectTable>;
export type PinRow = Selectable<PinTable>;
