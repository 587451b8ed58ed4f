import type { Kysely } from 'kysely';
import type { Database } from '../db/schema.ts';
import { touchObjects } from '../db/repos/objects.ts';

const MIN_FLUSH_INTERVAL_MS = 100;

interface Pending {
  hashes: Set<string>;
  narIds: Set<number>;
}

/**
 * Use of paths (narinfo hits, NAR downloads, paths a push found present), for retention.
 * Recorded in memory and written in batches — one UPDATE per cache per flush, not one per
 * request — so a busy cache costs the database a few writes a minute. A use is on record
 * within one flush interval; the GC pass flushes first, so it never misses one of this process.
 */
export class AccessTracker {
  #pending = new Map<number, Pending>();
  #flushing: Promise<void> = Promise.resolve();
  readonly #timer: NodeJS.Timeout;

  /** Flushes every `flushIntervalMs`; a failed flush keeps its batch for the next one. */
  constructor(
    private readonly db: Kysely<Database>,
    flushIntervalMs: number,
    onError: (err: unknown) => void,
  ) {
    this.#timer = setInterval(() => void this.flush().catch(onError), Math.max(flushIntervalMs, MIN_FLUSH_INTERVAL_MS));
    this.#timer.unref();
  }

  touchPath(cacheId: number, hash: string): void {
    this.#entry(cacheId).hashes.add(hash);
  }

  touchNar(cacheId: number, narId: number): void {
    this.#entry(cacheId).narIds.add(narId);
  }

  /** Writes what was recorded so far; concurrent calls are serialised. */
  flush(): Promise<void> {
    const run = this.#flushing.then(() => this.#write());
    this.#flushing = run.catch(() => {});
    return run;
  }

  /** Stops the timer and writes what is pending. */
  async close(): Promise<void> {
    clearInterval(this.#timer);
    await this.flush();
  }

  async #write(): Promise<void> {
    const batch = [...this.#pending];
    this.#pending = new Map();
    const now = Date.now();
    for (let i = 0; i < batch.length; i++) {
      const [cacheId, p] = batch[i];
      try {
        if (p.hashes.size > 0) await touchObjects(this.db, cacheId, { column: 'store_path_hash', values: [...p.hashes] }, now);
        if (p.narIds.size > 0) await touchObjects(this.db, cacheId, { column: 'nar_id', values: [...p.narIds] }, now);
      } catch (err) {
        // Not lost: what was not written is merged back for the next flush.
        for (const [id, rest] of batch.slice(i)) {
          for (const h of rest.hashes) this.touchPath(id, h);
          for (const n of rest.narIds) this.touchNar(id, n);
        }
        throw err;
      }
    }
  }

  #entry(cacheId: number): Pending {
    let p = this.#pending.get(cacheId);
    if (!p) {
      p = { hashes: new Set(), narIds: new Set() };
      this.#pending.set(cacheId, p);
    }
    return p;
  }
}
