import { sql, type Kysely } from 'kysely';
import type { CacheRow, Database } from '../db/schema.ts';
import { storageStats } from '../db/repos/stats.ts';
import { recentPushes, usageRows, usageTotals } from '../db/repos/usage.ts';
import type { CacheSummary, PathSearchHit, PushEntry, UsagePoint } from '../api/v1.ts';
import { hourOf } from './usage.ts';

const HOUR_MS = 3600_000;
/** The overview's hit rate covers the last week (the design's weekly review). */
const OVERVIEW_WINDOW_MS = 7 * 24 * HOUR_MS;
const CLOSURE_BATCH = 1000;

/** What the dashboard's overview shows of each cache the viewer may see. */
export async function cacheSummaries(db: Kysely<Database>, caches: CacheRow[], now = Date.now()): Promise<CacheSummary[]> {
  const totals = await usageTotals(db, hourOf(now - OVERVIEW_WINDOW_MS));
  return Promise.all(
    caches.map(async (c) => {
      const st = await storageStats(db, c.id);
      const t = totals.get(c.id);
      const lookups = (t?.narinfo_hits ?? 0) + (t?.narinfo_misses ?? 0);
      return {
        name: c.name,
        is_public: c.is_public === 1,
        paths: st.paths,
        nar_bytes: st.nar_bytes,
        stored_bytes: st.stored_bytes,
        dedup_saving: st.nar_bytes > 0 ? Math.max(0, 1 - st.stored_bytes / st.nar_bytes) : null,
        narinfo_hits: t?.narinfo_hits ?? 0,
        narinfo_misses: t?.narinfo_misses ?? 0,
        hit_rate: lookups > 0 ? (t?.narinfo_hits ?? 0) / lookups : null,
        last_push_at: t?.last_push_at ? new Date(t.last_push_at).toISOString() : null,
      };
    }),
  );
}

/**
 * One point per hour of the last `hours`, oldest first: hours without a row count zero, and the
 * storage size carries over from the last hour that measured it.
 */
export async function cacheHistory(db: Kysely<Database>, cacheId: number, hours: number, now = Date.now()): Promise<UsagePoint[]> {
  const last = hourOf(now);
  const first = last - (hours - 1) * HOUR_MS;
  const rows = new Map((await usageRows(db, cacheId, first)).map((r) => [Number(r.hour), r]));
  const before = await db
    .selectFrom('usage_hourly')
    .select(['nar_bytes', 'stored_bytes', 'paths'])
    .where('cache_id', '=', cacheId)
    .where('hour', '<', first)
    .where('stored_bytes', 'is not', null)
    .orderBy('hour', 'desc')
    .limit(1)
    .executeTakeFirst();
  let storage = { paths: before?.paths ?? null, nar_bytes: before?.nar_bytes ?? null, stored_bytes: before?.stored_bytes ?? null };
  const points: UsagePoint[] = [];
  for (let h = first; h <= last; h += HOUR_MS) {
    const r = rows.get(h);
    if (r?.stored_bytes != null) storage = { paths: r.paths, nar_bytes: r.nar_bytes, stored_bytes: r.stored_bytes };
    const n = (v: number | undefined) => Number(v ?? 0);
    points.push({
      hour: new Date(h).toISOString(),
      narinfo_hits: n(r?.narinfo_hits),
      narinfo_misses: n(r?.narinfo_misses),
      nar_downloads: n(r?.nar_downloads),
      bytes_served: n(r?.bytes_served),
      bytes_received: n(r?.bytes_received),
      pushes_ok: n(r?.pushes_ok),
      pushes_failed: n(r?.pushes_failed),
      ...storage,
    });
  }
  return points;
}

export async function cachePushes(db: Kysely<Database>, cacheId: number, limit: number): Promise<PushEntry[]> {
  return (await recentPushes(db, cacheId, limit)).map((p) => ({ ...p, at: new Date(Number(p.at)).toISOString() }));
}

/** LIKE with the wildcards of `s` taken literally (ESCAPE '\'). */
const likeLiteral = (s: string) => s.replace(/[\\%_]/g, (c) => `\\${c}`);

/** Store paths of the cache whose name or hash contains `q` (case-insensitive), newest first. */
export async function searchPaths(db: Kysely<Database>, cacheId: number, q: string, limit: number): Promise<PathSearchHit[]> {
  const pattern = `%${likeLiteral(q.toLowerCase())}%`;
  const rows = await db
    .selectFrom('objects as o')
    .innerJoin('nars as n', 'n.id', 'o.nar_id')
    .select(['o.store_path', 'o.store_path_hash', 'n.nar_size', 'o.created_at'])
    .where('o.cache_id', '=', cacheId)
    .where(sql<boolean>`lower(o.store_path) like ${pattern} escape '\\'`)
    .orderBy('o.created_at', 'desc')
    .orderBy('o.store_path')
    .limit(limit)
    .execute();
  return rows.map((r) => ({ ...r, created_at: new Date(Number(r.created_at)).toISOString() }));
}

/** Paths of the cache that refer to the path `hash` (other than itself), through the object_refs referee index. */
export async function referrersOf(db: Kysely<Database>, cacheId: number, hash: string): Promise<string[]> {
  const rows = await db
    .selectFrom('object_refs as r')
    .innerJoin('objects as o', 'o.id', 'r.object_id')
    .select('o.store_path')
    .where('r.cache_id', '=', cacheId)
    .where('r.ref_hash', '=', hash)
    .where('o.store_path_hash', '<>', hash)
    .orderBy('o.store_path')
    .execute();
  return rows.map((r) => r.store_path);
}

/** The path's closure within the cache: how many paths, their NAR bytes, and references the cache lacks. */
export async function closureOf(
  db: Kysely<Database>,
  cacheId: number,
  hash: string,
): Promise<{ paths: number; nar_bytes: number; missing: number }> {
  const seen = new Set<string>([hash]);
  let frontier = [hash];
  let narBytes = 0;
  let found = 0;
  while (frontier.length > 0) {
    const batch = frontier.splice(0, CLOSURE_BATCH);
    const rows = await db
      .selectFrom('objects as o')
      .innerJoin('nars as n', 'n.id', 'o.nar_id')
      .select(['o.references', 'n.nar_size'])
      .where('o.cache_id', '=', cacheId)
      .where('o.store_path_hash', 'in', batch)
      .execute();
    found += rows.length;
    for (const r of rows) {
      narBytes += Number(r.nar_size);
      for (const ref of JSON.parse(r.references) as string[]) {
        const h = ref.slice(0, 32);
        if (!seen.has(h)) {
          seen.add(h);
          frontier.push(h);
        }
      }
    }
  }
  return { paths: found, nar_bytes: narBytes, missing: seen.size - found };
}

/**
 * When GC may remove the path: retention after its last use, and only once no kept path refers
 * to it (GC never breaks a closure). null when the cache keeps paths forever.
 */
export function collectableAfter(cache: CacheRow, lastUsedAt: number, defaultRetentionSeconds: number): string | null {
  const retention = cache.retention_seconds ?? defaultRetentionSeconds;
  return retention > 0 ? new Date(lastUsedAt + retention * 1000).toISOString() : null;
}
