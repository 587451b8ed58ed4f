import type { Kysely } from 'kysely';
import type { Database } from '../db/schema.ts';
import type { BlobStore } from '../storage/types.ts';
import { expireUnusedPaths } from './retention.ts';
import { purgeExpiredUpstreamLookups } from '../db/repos/upstream-lookups.ts';
import { sweepUnreferenced, type SweepResult } from './sweep.ts';
import { sweepOrphanBlobs } from './orphan-blobs.ts';

export interface GcOptions {
  /** Server default retention in seconds when a cache has none (0 = keep forever). */
  defaultRetentionSeconds: number;
  /** Server default retention of paths pulled from an upstream (0 = keep forever). */
  defaultUpstreamRetentionSeconds: number;
  /** Unreferenced data younger than this is kept: it may belong to a push in progress. */
  graceSeconds: number;
  now?: number;
}

export interface GcReport extends SweepResult {
  expiredPaths: number;
  /** Blobs no chunk row names (left by killed uploads). */
  orphanBlobs: number;
}

/** One garbage-collection pass over every cache, then the global NAR and chunk space. */
export async function runGarbageCollection(db: Kysely<Database>, blobs: BlobStore, o: GcOptions): Promise<GcReport> {
  const now = o.now ?? Date.now();
  let expiredPaths = 0;
  for (const cache of await db.selectFrom('caches').select(['id', 'retention_seconds', 'upstream_retention_seconds']).execute()) {
    const retention = {
      own: cache.retention_seconds ?? o.defaultRetentionSeconds,
      upstream: cache.upstream_retention_seconds ?? o.defaultUpstreamRetentionSeconds,
    };
    if (retention.own > 0 || retention.upstream > 0) expiredPaths += await expireUnusedPaths(db, cache.id, retention, now);
  }
  await purgeExpiredUpstreamLookups(db, now);
  const cutoff = now - o.graceSeconds * 1000;
  const swept = await sweepUnreferenced(db, blobs, cutoff);
  const orphanBlobs = await sweepOrphanBlobs(db, blobs, cutoff);
  return { expiredPaths, ...swept, orphanBlobs };
}
