import type { Kysely } from 'kysely';
import type { Database } from '../db/schema.ts';
import type { ChunkStore, CompactionResult } from '../core/chunk-store.ts';
import { expireUnusedPaths } from './retention.ts';
import { sweepUnreferenced, type SweepResult } from './sweep.ts';

export interface GcOptions {
  /** Server default retention in seconds when a cache has none (0 = keep forever). */
  defaultRetentionSeconds: number;
  /** Unreferenced data younger than this is kept: it may belong to a push in progress. */
  graceSeconds: number;
  /** Packs whose live bytes fall below this share of their size are rewritten (default 0.5). */
  compactBelow?: number;
  now?: number;
}

export interface GcReport extends SweepResult, CompactionResult {
  expiredPaths: number;
  /** Pack objects no pack row names (left by killed uploads). */
  orphanBlobs: number;
}

/**
 * One garbage-collection pass over every cache, then the global NAR and chunk
 * space, then the packs: sparse ones compacted, orphans removed.
 */
export async function runGarbageCollection(db: Kysely<Database>, store: ChunkStore, o: GcOptions): Promise<GcReport> {
  const now = o.now ?? Date.now();
  let expiredPaths = 0;
  for (const cache of await db.selectFrom('caches').select(['id', 'retention_seconds']).execute()) {
    const retention = cache.retention_seconds ?? o.defaultRetentionSeconds;
    if (retention > 0) expiredPaths += await expireUnusedPaths(db, cache.id, retention, now);
  }
  const cutoff = now - o.graceSeconds * 1000;
  const swept = await sweepUnreferenced(db, cutoff);
  const compacted = await store.compact({ cutoff, maxLiveRatio: o.compactBelow ?? 0.5, now });
  const orphanBlobs = await store.sweepOrphans(cutoff);
  return { expiredPaths, ...swept, ...compacted, orphanBlobs };
}
