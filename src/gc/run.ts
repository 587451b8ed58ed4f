import type { Kysely } from 'kysely';
import type { CacheRow, Database } from '../db/schema.ts';
import type { ChunkStore, CompactionResult } from '../core/chunk-store.ts';
import type { GcCacheReport, GcReport } from '../api/v1.ts';
import { prunePinRevisions } from '../db/repos/pins.ts';
import { collectUnusedPaths } from './retention.ts';
import { NEVER_EXPIRES } from './closure.ts';
import { purgeExpiredUpstreamLookups } from '../db/repos/upstream-lookups.ts';
import { sweepUnreferenced, type SweepResult } from './sweep.ts';

export type { GcReport };

export interface GcOptions {
  /** Server default retention in seconds when a cache has none (0 = keep forever). */
  defaultRetentionSeconds: number;
  /** Server default retention of paths pulled from an upstream (0 = keep forever). */
  defaultUpstreamRetentionSeconds?: number;
  /**
   * Unreferenced data younger than this is kept: it may belong to a push in progress. Paths
   * used within it are kept whatever their cache's retention: a push may be about to refer to them.
   */
  graceSeconds: number;
  /** Only this cache's paths (the sweep of unused NARs and chunks is global either way). */
  cache?: Pick<CacheRow, 'id' | 'name' | 'retention_seconds' | 'upstream_retention_seconds'>;
  /** Work out what would go; change nothing. */
  dryRun?: boolean;
  /** Packs whose live bytes fall below this share of their size are rewritten (default 0.5). */
  compactBelow?: number;
  now?: number;
}

const NOTHING_SWEPT: SweepResult = { uploads: 0, stagings: 0, nars: 0, chunks: 0, chunkBytes: 0 };
const NOTHING_COMPACTED: CompactionResult = { packsRewritten: 0, packsRetired: 0, packsDeleted: 0, bytesFreed: 0 };

/**
 * One garbage-collection pass: each cache's expired paths, then the global NAR and chunk space,
 * then the packs (sparse ones compacted, those retired by an earlier pass deleted, orphans removed).
 */
export async function runGarbageCollection(db: Kysely<Database>, store: ChunkStore, o: GcOptions): Promise<GcReport> {
  const started = Date.now();
  const now = o.now ?? started;
  const dryRun = o.dryRun === true;
  const caches = o.cache
    ? [o.cache]
    : await db.selectFrom('caches').select(['id', 'name', 'retention_seconds', 'upstream_retention_seconds']).orderBy('name').execute();
  const reports: GcCacheReport[] = [];
  // Paths used within the grace period are kept whatever the retention: a push may be about to refer to them.
  const cutoff = (retention: number) => (retention > 0 ? now - Math.max(retention, o.graceSeconds) * 1000 : NEVER_EXPIRES);
  for (const cache of caches) {
    const own = cache.retention_seconds ?? o.defaultRetentionSeconds;
    const upstream = cache.upstream_retention_seconds ?? o.defaultUpstreamRetentionSeconds ?? 0;
    if (own <= 0 && upstream <= 0) {
      reports.push({ cache: cache.name, paths: 0, store_paths: [], nar_bytes: 0 });
      continue;
    }
    if (!dryRun) await prunePinRevisions(db, cache.id, now);
    const c = await collectUnusedPaths(db, cache.id, { own: cutoff(own), upstream: cutoff(upstream) }, now, dryRun);
    reports.push({ cache: cache.name, paths: c.paths, store_paths: c.storePaths, nar_bytes: c.narBytes });
  }
  if (!dryRun) await purgeExpiredUpstreamLookups(db, now);
  const graceCutoff = now - o.graceSeconds * 1000;
  const swept = dryRun ? NOTHING_SWEPT : await sweepUnreferenced(db, graceCutoff);
  const compacted = dryRun ? NOTHING_COMPACTED : await store.compact({ cutoff: graceCutoff, maxLiveRatio: o.compactBelow ?? 0.5, now });
  const orphanBlobs = dryRun ? 0 : await store.sweepOrphans(graceCutoff);
  return {
    dry_run: dryRun,
    started_at: new Date(started).toISOString(),
    duration_ms: Date.now() - started,
    caches: reports,
    paths: reports.reduce((n, r) => n + r.paths, 0),
    nar_bytes: reports.reduce((n, r) => n + r.nar_bytes, 0),
    nars: swept.nars,
    chunks: swept.chunks,
    bytes_freed: swept.chunkBytes,
    uploads: swept.uploads,
    stagings: swept.stagings,
    orphan_blobs: orphanBlobs,
    packs_rewritten: compacted.packsRewritten,
    packs_retired: compacted.packsRetired,
    packs_deleted: compacted.packsDeleted,
    pack_bytes_deleted: compacted.bytesFreed,
  };
}
