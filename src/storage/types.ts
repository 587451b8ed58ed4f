import type { Readable } from 'node:stream';
export interface ByteRange { start: number; end?: number /* inclusive */ }
export class BlobNotFoundError extends Error { constructor(readonly key: string) { super(`blob not found: ${key}`); this.name = 'BlobNotFoundError'; } }
/** One listed object; `modifiedAt` (ms since the epoch) lets sweeps spare objects still being written. */
export interface BlobListing {
  key: string;
  size: number;
  modifiedAt: number;
}

export interface BlobStore {
  readonly kind: 'local' | 's3';
  /** Stores the whole body under key; the object becomes visible only when complete (never a partial object under the key). Resolves with the byte count written. Rejects (and leaves nothing behind) if the body stream errors. */
  put(key: string, body: Readable | Buffer): Promise<{ size: number }>;
  /** Streams the object (or a byte range). Rejects with BlobNotFoundError when absent — before returning the stream, so callers can fail closed before sending headers. */
  get(key: string, range?: ByteRange): Promise<Readable>;
  /** Reads a whole small object into memory (chunks are ≤ a few hundred KiB). BlobNotFoundError when absent. */
  getBuffer(key: string): Promise<Buffer>;
  head(key: string): Promise<{ size: number } | null>;
  /** Deletes keys; keys that are already absent are not an error (a GC retry must make progress). */
  delete(keys: string[]): Promise<void>;
  /** Lists keys under a prefix (for sweeps), paging internally. */
  list(prefix: string): AsyncIterable<BlobListing>;
  /** Cheap liveness probe for /v1/healthz (write+read+delete of a tiny probe object is fine, or a HEAD on the bucket). */
  check(): Promise<void>;
  /** Only S3 in redirect mode: a short-lived presigned GET URL; undefined when not supported. */
  presignGet?(key: string, expiresInSeconds: number): Promise<string>;
  /** A store that writes through temporary files (local): removes those older than `olderThanMs`, left by killed writers. */
  sweepTemporaryFiles?(olderThanMs: number): Promise<number>;
}
