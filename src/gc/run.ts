import type { Kysely } from 'kysely';
import type { Database } from '../db/schema.ts';
import type { BlobStore } from '../storage/types.ts';
import { expireUnusedPaths } from './retention.ts';
import { sweepUnreferenced, type SweepResult } from './sweep.ts';

export interface GcOptions {
  /** Server default retention in seconds when a cache has none (0 = keep forever). */
  defaultRetentionSeconds: number;
  /** Unreferenced data younger than this is kept: it may belong to a push in progress. */
  graceSeconds: number;
  now?: number;
}

export interface GcReport extends SweepResult {
  expiredPaths: number;
}

/** One garbage-collection pass over every cache, then the global NAR and chunk space. */
export async function runGarbageCollection(db: Kysely<Database>, blobs: BlobStore, o: GcOptions): Promise<GcReport> {
  const now = o.now ?? Date.now();
  let expiredPaths = 0;
  for (const cache of await db.selectFrom('caches').select(['id', 'retention_seconds']).execute()) {
    const retention = cache.retention_seconds ?? o.defaultRetentionSeconds;
    if (retention > 0) expiredPaths += await expireUnusedPaths(db, cache.id, retention, now);
  }
  const swept = await sweepUnreferenced(db, blobs, now - o.graceSeconds * 1000);
  return { expiredPaths, ...swept };
}
