import type { FastifyBaseLogger } from 'fastify';
import { newLeaseHolder, releaseLease, tryAcquireLease } from '../db/repos/leases.ts';
import { recordGcPass } from '../db/repos/gc-passes.ts';
import { runGarbageCollection, type GcReport } from '../gc/run.ts';
import type { CacheRow } from '../db/schema.ts';
import { LocalBlobStore } from '../storage/local.ts';
import { conflict, LoftError } from '../core/errors.ts';
import type { Services } from './services.ts';

const LEASE = 'gc';
/**
 * Held by a real pass for as long as it runs (renewed every third of its term), whoever started
 * it: passes never overlap, on one replica or several. One that dies mid-pass lets it run out.
 */
const PASS_LEASE = 'gc-pass';
const PASS_LEASE_TTL_MS = 120_000;

export interface GcRequest {
  trigger: 'timer' | 'api';
  /** Default: every cache. */
  cache?: CacheRow;
  dryRun?: boolean;
}

/**
 * One garbage-collection pass, however started. A real pass takes PASS_LEASE (a 409 while another
 * runs); a dry run changes nothing and needs none. Use recorded in memory is written first, so the
 * pass sees it; a real pass is then logged, counted in the metrics and recorded in gc_passes.
 */
export async function gcOnce(s: Services, log: FastifyBaseLogger, req: GcRequest): Promise<GcReport> {
  if (req.dryRun) return gcPass(s, log, req);
  const holder = newLeaseHolder();
  if (!(await tryAcquireLease(s.kysely, PASS_LEASE, holder, PASS_LEASE_TTL_MS))) {
    throw conflict('a garbage collection pass is already running (started by a request, the timer or another replica); retry once it has finished');
  }
  const renew = setInterval(() => void tryAcquireLease(s.kysely, PASS_LEASE, holder, PASS_LEASE_TTL_MS).catch(() => {}), PASS_LEASE_TTL_MS / 3);
  try {
    return await gcPass(s, log, req);
  } finally {
    clearInterval(renew);
    await releaseLease(s.kysely, PASS_LEASE, holder).catch(() => {});
  }
}

async function gcPass(s: Services, log: FastifyBaseLogger, req: GcRequest): Promise<GcReport> {
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
  const holder = newLeaseHolder();
  const intervalMs = s.config.gc.intervalSeconds * 1000;
  let running: Promise<void> | undefined;
  const tick = async () => {
    try {
      if (!(await tryAcquireLease(s.kysely, LEASE, holder, intervalMs * 3))) return;
      await gcOnce(s, log, { trigger: 'timer' });
      if (s.blobs instanceof LocalBlobStore) await s.blobs.sweepTemporaryFiles(3600_000);
    } catch (err) {
      if (err instanceof LoftError && err.kind === 'conflict') log.info('garbage collection skipped: a pass requested through the API is running');
      else log.error({ err }, 'garbage collection failed; retrying next interval');
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
