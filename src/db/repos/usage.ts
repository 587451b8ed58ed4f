import type { Kysely, Selectable } from 'kysely';
import type { Database, GcHourlyTable, PushLogTable, UsageHourlyTable } from '../schema.ts';
import type { StorageStats } from './stats.ts';

export const USAGE_COUNTERS = [
  'narinfo_hits',
  'narinfo_misses',
  'nar_downloads',
  'bytes_served',
  'bytes_received',
  'pushes_ok',
  'pushes_failed',
] as const;

/** Counter deltas of one cache and hour, as a replica's batch adds them. */
export type UsageDelta = Pick<Selectable<UsageHourlyTable>, 'cache_id' | 'hour' | (typeof USAGE_COUNTERS)[number]>;
export type StorageSnapshot = Pick<Selectable<UsageHourlyTable>, 'cache_id' | 'hour'> & Pick<StorageStats, 'paths' | 'nar_bytes' | 'stored_bytes'>;
export type PushLogEntry = Omit<Selectable<PushLogTable>, 'id'>;
export type GcPassDelta = Selectable<GcHourlyTable>;

/** Adds the deltas to their hourly rows: concurrent replicas add, never overwrite. */
export async function addUsage(db: Kysely<Database>, deltas: UsageDelta[]): Promise<void> {
  for (const d of deltas) {
    await db
      .insertInto('usage_hourly')
      .values(d)
      .onConflict((oc) =>
        oc.columns(['cache_id', 'hour']).doUpdateSet((eb) =>
          Object.fromEntries(USAGE_COUNTERS.map((c) => [c, eb(`usage_hourly.${c}`, '+', eb.ref(`excluded.${c}`))])),
        ),
      )
      .execute();
  }
}

/** The storage size seen now, kept as the hour's value (the last writer of the hour wins). */
export async function recordStorageSnapshot(db: Kysely<Database>, s: StorageSnapshot): Promise<void> {
  const { paths, nar_bytes, stored_bytes } = s;
  await db
    .insertInto('usage_hourly')
    .values(s)
    .onConflict((oc) => oc.columns(['cache_id', 'hour']).doUpdateSet({ paths, nar_bytes, stored_bytes }))
    .execute();
}

export async function insertPushLog(db: Kysely<Database>, entries: PushLogEntry[]): Promise<void> {
  if (entries.length > 0) await db.insertInto('push_log').values(entries).execute();
}

export async function addGcPass(db: Kysely<Database>, d: GcPassDelta): Promise<void> {
  const cols = ['passes', 'failures', 'paths_expired', 'nars_deleted', 'chunks_deleted', 'bytes_freed'] as const;
  await db
    .insertInto('gc_hourly')
    .values(d)
    .onConflict((oc) =>
      oc.column('hour').doUpdateSet((eb) => Object.fromEntries(cols.map((c) => [c, eb(`gc_hourly.${c}`, '+', eb.ref(`excluded.${c}`))]))),
    )
    .execute();
}

export function usageRows(db: Kysely<Database>, cacheId: number, since: number) {
  return db
    .selectFrom('usage_hourly')
    .selectAll()
    .where('cache_id', '=', cacheId)
    .where('hour', '>=', since)
    .orderBy('hour')
    .execute();
}

/** Per cache: hits and misses since `since`, and its last push. */
export async function usageTotals(
  db: Kysely<Database>,
  since: number,
): Promise<Map<number, { narinfo_hits: number; narinfo_misses: number; last_push_at: number | null }>> {
  const [counts, pushes] = await Promise.all([
    db
      .selectFrom('usage_hourly')
      .select(({ fn }) => ['cache_id', fn.sum<number>('narinfo_hits').as('hits'), fn.sum<number>('narinfo_misses').as('misses')])
      .where('hour', '>=', since)
      .groupBy('cache_id')
      .execute(),
    db.selectFrom('push_log').select(({ fn }) => ['cache_id', fn.max<number>('at').as('last')]).groupBy('cache_id').execute(),
  ]);
  const out = new Map<number, { narinfo_hits: number; narinfo_misses: number; last_push_at: number | null }>();
  const entry = (id: number) => {
    let e = out.get(Number(id));
    if (!e) out.set(Number(id), (e = { narinfo_hits: 0, narinfo_misses: 0, last_push_at: null }));
    return e;
  };
  for (const c of counts) Object.assign(entry(c.cache_id), { narinfo_hits: Number(c.hits ?? 0), narinfo_misses: Number(c.misses ?? 0) });
  for (const p of pushes) entry(p.cache_id).last_push_at = p.last === null ? null : Number(p.last);
  return out;
}

export function recentPushes(db: Kysely<Database>, cacheId: number, limit: number) {
  return db
    .selectFrom('push_log')
    .select(['at', 'sub', 'via', 'paths', 'bytes'])
    .where('cache_id', '=', cacheId)
    .orderBy('at', 'desc')
    .orderBy('id', 'desc')
    .limit(limit)
    .execute();
}

export function gcRows(db: Kysely<Database>, since: number) {
  return db.selectFrom('gc_hourly').selectAll().where('hour', '>=', since).orderBy('hour', 'desc').execute();
}

/** Drops history older than `before` (and a destroyed cache's rows with it, once they age out). */
export async function pruneHistory(db: Kysely<Database>, before: number): Promise<void> {
  await db.deleteFrom('usage_hourly').where('hour', '<', before).execute();
  await db.deleteFrom('push_log').where('at', '<', before).execute();
  await db.deleteFrom('gc_hourly').where('hour', '<', before).execute();
}

/** A destroyed cache's history goes with it (SQLite may hand its id to a new cache). */
export async function deleteCacheHistory(db: Kysely<Database>, cacheId: number): Promise<void> {
  await db.deleteFrom('usage_hourly').where('cache_id', '=', cacheId).execute();
  await db.deleteFrom('push_log').where('cache_id', '=', cacheId).execute();
}

