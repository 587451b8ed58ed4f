import { randomUUID } from 'node:crypto';
import os from 'node:os';
import type { FastifyBaseLogger } from 'fastify';
import { releaseLease, tryAcquireLease } from '../db/repos/leases.ts';
import { runGarbageCollection, type GcReport } from '../gc/run.ts';
import { LocalBlobStore } from '../storage/local.ts';
import type { Services } from './services.ts';

const LEASE = 'gc';

/** One GC pass, counted in the metrics and the dashboard's GC history whether it succeeds or not. */
export async function gcOnce(s: Services): Promise<GcReport> {
  let report: GcReport | undefined;
  try {
    report = await runGarbageCollection(s.kysely, s.chunkStore, {
      defaultRetentionSeconds: s.config.gc.defaultRetentionSeconds,
      graceSeconds: s.config.gc.stagingGraceSeconds,
      compactBelow: s.config.gc.compactBelow,
    });
    return report;
  } finally {
    s.metrics.gcPasses.inc({ result: report ? 'ok' : 'failed' });
    s.metrics.gcBytesFreed.inc(report?.bytesFreed ?? 0);
    await s.usage.recordGcPass(report);
  }
}

/** Rows and blobs removed, by kind (bytes freed have their own counter). */
export function countDeleted(s: Services, { bytesFreed: _, ...removed }: GcReport): void {
  for (const [kind, n] of Object.entries(removed)) s.metrics.gcDeleted.inc({ kind }, n);
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
      const report = await gcOnce(s);
      if (s.blobs instanceof LocalBlobStore) await s.blobs.sweepTemporaryFiles(3600_000);
      countDeleted(s, report);
      log.info({ ...report }, 'garbage collection done');
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
