import { randomUUID } from 'node:crypto';
import os from 'node:os';
import type { FastifyBaseLogger } from 'fastify';
import { releaseLease, tryAcquireLease } from '../db/repos/leases.ts';
import { recordGcPass } from '../db/repos/gc-passes.ts';
import { runGarbageCollection, type GcReport } from '../gc/run.ts';
import type { CacheRow } from '../db/schema.ts';
import { LocalBlobStore } from '../storage/local.ts';
import type { Services } from './services.ts';

const LEASE = 'gc';

export interface GcRequest {
  trigger: 'timer' | 'api';
  /** Default: every cache. */
  cache?: CacheRow;
  dryRun?: boolean;
}

/**
 * One garbage-collection pass, however started. Use recorded in memory is written first, so the
 * pass sees it; a real pass is then logged, counted in the metrics and recorded in gc_passes.
 */
export async function gcOnce(s: Services, log: FastifyBaseLogger, req: GcRequest): Promise<GcReport> {
  await s.accessTracker.flush();
  let report: GcReport;
  try {
    report = await runGarbageCollection(s.gcDb.kysely, s.chunkStore, {
      defaultRetentionSeconds: s.config.gc.defaultRetentionSeconds,
      defaultUpstreamRetentionSeconds: s.config.gc.upstreamRetentionSeconds,
      graceSeconds: s.config.gc.stagingGraceSeconds,
      compactBelow: s.config.gc.compactBelow,
      cache: req.cache,
      dryRun: req.dryRun,
    });
  } catch (e) {
    if (!req.dryRun) {
      s.metrics.gcPasses.inc({ trigger: req.trigger, result: 'failed' });
      await s.usage.recordGcPass(undefined).catch(() => {});
    }
    throw e;
  }
  if (report.dry_run) return report;
  for (const c of report.caches) {
    const row = c.paths > 0 ? await s.caches.find(c.cache) : undefined;
    if (row) s.narinfoCache.forgetCache(row.id);
  }
  const scope = req.cache?.name ?? '*';
  await recordGcPass(s.kysely, {
    started_at: Date.parse(report.started_at),
    duration_ms: report.duration_ms,
    trigger: req.trigger,
    scope,
    paths: report.paths,
    nars: report.nars,
    chunks: report.chunks,
    bytes_freed: report.bytes_freed,
    report: JSON.stringify(report),
  });
  const m = s.metrics;
  m.gcPasses.inc({ trigger: req.trigger, result: 'ok' });
  m.gcPassDuration.observe(report.duration_ms / 1000);
  m.gcBytesFreed.inc(report.bytes_freed);
  for (const kind of ['paths', 'nars', 'chunks', 'uploads', 'stagings', 'orphan_blobs', 'packs_deleted'] as const) m.gcDeleted.inc({ kind }, report[kind]);
  await s.usage.recordGcPass(report);
  const { caches: _, ...totals } = report;
  log.info({ gc: { ...totals, trigger: req.trigger, scope } }, 'garbage collection done');
  return report;
}

/**
 * Background jobs (GC and sweeps) on a timer. Any number of replicas may run
 * this; a lease in the database lets one at a time do the work, and when that
 * replica dies its lease runs out and another takes over.
 */
export function startJobs(s: Services, log: FastifyBaseLogger): { stop(): Promise<void> } {
  const holder = `${os.hostname()}-${process.pid}-${randomUUID().slice(0, 8)}`;
  const intervalMs = s.config.gc.intervalSeconds * 1000;
  let running: Promise<void> | undefined;
  const tick = async () => {
    try {
      if (!(await tryAcquireLease(s.kysely, LEASE, holder, intervalMs * 3))) return;
      await gcOnce(s, log, { trigger: 'timer' });
      if (s.blobs instanceof LocalBlobStore) await s.blobs.sweepTemporaryFiles(3600_000);
    } catch (err) {
      log.error({ err }, 'garbage collection failed; retrying next interval');
    }
  };
  const timer = intervalMs > 0 ? setInterval(() => (running ??= tick().finally(() => (running = undefined))), intervalMs) : undefined;
  timer?.unref();
  return {
    async stop() {
      if (timer) clearInterval(timer);
      await running;
      await releaseLease(s.kysely, LEASE, holder).catch(() => {});
    },
  };
}
