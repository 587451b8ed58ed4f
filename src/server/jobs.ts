import { randomUUID } from 'node:crypto';
import os from 'node:os';
import type { FastifyBaseLogger } from 'fastify';
import { releaseLease, tryAcquireLease } from '../db/repos/leases.ts';
import { runGarbageCollection, type GcReport } from '../gc/run.ts';
import { LocalBlobStore } from '../storage/local.ts';
import type { Services } from './services.ts';

const LEASE = 'gc';

export function gcOnce(s: Services): Promise<GcReport> {
  return runGarbageCollection(s.kysely, s.blobs, {
    defaultRetentionSeconds: s.config.gc.defaultRetentionSeconds,
    defaultUpstreamRetentionSeconds: s.config.gc.upstreamRetentionSeconds,
    graceSeconds: s.config.gc.stagingGraceSeconds,
  });
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
      for (const [kind, n] of Object.entries(report)) s.metrics.gcDeleted.inc({ kind }, n);
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
