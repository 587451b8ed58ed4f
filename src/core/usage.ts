import type { Kysely } from 'kysely';
import type { Database } from '../db/schema.ts';
import {
  USAGE_COUNTERS,
  addGcPass,
  addUsage,
  insertPushLog,
  pruneHistory,
  recordStorageSnapshot,
  type PushLogEntry,
  type UsageDelta,
} from '../db/repos/usage.ts';
import { storageStats, type StorageStats } from '../db/repos/stats.ts';
import type { GcReport } from '../gc/run.ts';

const HOUR_MS = 3600_000;

export const hourOf = (ms: number) => Math.floor(ms / HOUR_MS) * HOUR_MS;

export interface UsageOptions {
  /** How often the batch goes to the database; 0 = only on flush() (tests, shutdown). */
  flushIntervalMs: number;
  /** History older than this is deleted. */
  historyDays: number;
  /** Told each storage size measured (Prometheus gauges). */
  onSnapshot?: (cache: string, stats: StorageStats) => void;
}

type Counter = (typeof USAGE_COUNTERS)[number];

/**
 * The dashboard's history, kept in the database so it survives restarts and adds up across
 * replicas: each replica counts in memory and adds its batch to hourly rows every
 * flush interval (not a write per request). Pushes are logged per cache and token sub,
 * one row per flush interval.
 */
export class UsageRecorder {
  #counts = new Map<string, UsageDelta>();
  #pushes = new Map<string, PushLogEntry>();
  #pushedCaches = new Map<number, string>();
  #snapshotHour = 0;
  #prunedHour = 0;
  #flushing: Promise<void> | undefined;
  #timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly db: Kysely<Database>,
    private readonly o: UsageOptions,
  ) {}

  /** Flushes every flush interval; a failed write is reported and its batch dropped (counts, not data). */
  start(onError: (err: unknown) => void): void {
    if (this.o.flushIntervalMs <= 0 || this.#timer) return;
    this.#timer = setInterval(() => void this.flush().catch(onError), this.o.flushIntervalMs);
    this.#timer.unref();
  }

  count(cacheId: number, counter: Counter, n = 1, now = Date.now()): void {
    const hour = hourOf(now);
    const key = `${cacheId}:${hour}`;
    let d = this.#counts.get(key);
    if (!d) {
      d = { cache_id: cacheId, hour, ...(Object.fromEntries(USAGE_COUNTERS.map((c) => [c, 0])) as Record<Counter, number>) };
      this.#counts.set(key, d);
    }
    d[counter] += n;
  }

  /** Bytes a token sent to a cache and paths it made visible, for the push log (one row per cache, sub and method). */
  pushActivity(cache: { id: number; name: string }, sub: string, via: string, a: { paths?: number; bytes?: number }): void {
    const key = `${cache.id}\0${sub}\0${via}`;
    let e = this.#pushes.get(key);
    if (!e) this.#pushes.set(key, (e = { cache_id: cache.id, at: Date.now(), sub, via, paths: 0, bytes: 0 }));
    e.paths += a.paths ?? 0;
    e.bytes += a.bytes ?? 0;
    if (a.paths) this.#pushedCaches.set(cache.id, cache.name);
  }

  /** Writes the batch; concurrent calls share one write. */
  flush(): Promise<void> {
    this.#flushing ??= this.#write().finally(() => (this.#flushing = undefined));
    return this.#flushing;
  }

  async recordGcPass(report: GcReport | undefined): Promise<void> {
    await addGcPass(this.db, {
      hour: hourOf(Date.now()),
      passes: 1,
      failures: report ? 0 : 1,
      paths_expired: report?.paths ?? 0,
      nars_deleted: report?.nars ?? 0,
      chunks_deleted: report?.chunks ?? 0,
      bytes_freed: report?.bytes_freed ?? 0,
    });
    // What GC freed shows in the storage chart at once.
    this.#snapshotHour = 0;
  }

  async close(): Promise<void> {
    if (this.#timer) clearInterval(this.#timer);
    await this.flush();
  }

  async #write(): Promise<void> {
    const counts = [...this.#counts.values()];
    const pushes = [...this.#pushes.values()].filter((p) => p.paths > 0 || p.bytes > 0);
    const pushed = this.#pushedCaches;
    this.#counts = new Map();
    this.#pushes = new Map();
    this.#pushedCaches = new Map();
    await addUsage(this.db, counts);
    await insertPushLog(this.db, pushes);
    await this.#snapshot(pushed);
    const hour = hourOf(Date.now());
    if (hour !== this.#prunedHour) {
      this.#prunedHour = hour;
      await pruneHistory(this.db, hour - this.o.historyDays * 24 * HOUR_MS);
    }
  }

  /**
   * Measures (one aggregate query each) the caches pushed to since the last flush, and every
   * cache once an hour so each hour has a point.
   */
  async #snapshot(pushed: Map<number, string>): Promise<void> {
    const hour = hourOf(Date.now());
    let caches = [...pushed].map(([id, name]) => ({ id, name }));
    if (hour !== this.#snapshotHour) {
      this.#snapshotHour = hour;
      caches = await this.db.selectFrom('caches').select(['id', 'name']).execute();
    }
    for (const { id, name } of caches) {
      const stats = await storageStats(this.db, id);
      await recordStorageSnapshot(this.db, { cache_id: id, hour, paths: stats.paths, nar_bytes: stats.nar_bytes, stored_bytes: stats.stored_bytes });
      this.o.onSnapshot?.(name, stats);
    }
  }
}
