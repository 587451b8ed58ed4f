import { createHash, randomBytes } from 'node:crypto';
import type { Kysely } from 'kysely';
import type { ChunkWorkerPool } from '../compression/pool.ts';
import type { BlobStore } from '../storage/types.ts';
import type { ChunkRow, Database } from '../db/schema.ts';
import { insertChunks } from '../db/repos/chunks.ts';

/**
 * The global chunk space: each chunk stored once, as one zstd frame, under a
 * key that is never rewritten (a random suffix means a racing upload of the
 * same chunk writes its own blob, loses the insert, and deletes it).
 */
export class ChunkStore {
  constructor(
    private readonly db: Kysely<Database>,
    readonly blobs: BlobStore,
    readonly pool: ChunkWorkerPool,
  ) {}

  /**
   * Stores verified frames: the blobs in parallel, then their rows in one
   * statement. Rows are written only after every blob is durable, so no row
   * ever names a missing blob.
   */
  async storeFrames(frames: { hash: string; size: number; frame: Buffer; storedHash?: string }[]): Promise<ChunkRow[]> {
    const rows = await Promise.all(
      frames.map(async ({ hash, size, frame, storedHash }) => {
        const key = `chunks/${hash.slice(0, 2)}/${hash.slice(2, 4)}/${hash}-${randomBytes(4).toString('hex')}.zst`;
        await this.blobs.put(key, frame);
        return {
          hash,
          size,
          stored_size: frame.length,
          stored_hash: storedHash ?? createHash('sha256').update(frame).digest('hex'),
          storage_key: key,
          created_at: Date.now(),
        };
      }),
    );
    const { chunks, lost } = await insertChunks(this.db, rows);
    await this.blobs.delete(lost.map((r) => r.storage_key));
    const byHash = new Map(chunks.map((c) => [c.hash, c]));
    return frames.map((f) => byHash.get(f.hash)!);
  }

  /**
   * Yields the stored frames of `chunks` in order, fetching up to `readAhead`
   * ahead, and fails on a missing or corrupt frame instead of yielding it.
   */
  async *frames(chunks: ChunkRow[], readAhead = 4): AsyncGenerator<Buffer> {
    const pending: Promise<Buffer>[] = [];
    let next = 0;
    const fetch = (c: ChunkRow) => {
      const p = this.blobs.getBuffer(c.storage_key).then((buf) => {
        if (buf.length !== c.stored_size || createHash('sha256').update(buf).digest('hex') !== c.stored_hash) {
          throw new Error(`chunk ${c.hash} is corrupt in storage (${c.storage_key})`);
        }
        return buf;
      });
      // A prefetch may fail before it is awaited; that must not be an unhandled rejection.
      p.catch(() => {});
      return p;
    };
    while (next < chunks.length && pending.length < readAhead) pending.push(fetch(chunks[next++]));
    while (pending.length > 0) {
      const buf = await pending.shift()!;
      if (next < chunks.length) pending.push(fetch(chunks[next++]));
      yield buf;
    }
  }
}
