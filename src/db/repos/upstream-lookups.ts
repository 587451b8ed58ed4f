import type { Kysely, Selectable } from 'kysely';
import type { Database, UpstreamLookupTable } from '../schema.ts';

export type UpstreamLookupRow = Selectable<UpstreamLookupTable>;

const unexpired = (db: Kysely<Database>, cacheId: number, now: number) =>
  db.selectFrom('upstream_lookups').selectAll().where('cache_id', '=', cacheId).where('expires_at', '>', now);

/** The unexpired answer the upstreams gave for a path of the cache. */
export function findUpstreamLookup(db: Kysely<Database>, cacheId: number, hash: string, now: number): Promise<UpstreamLookupRow | undefined> {
  return unexpired(db, cacheId, now).where('store_path_hash', '=', hash).executeTakeFirst();
}

/** The unexpired verified narinfos of the cache whose NAR has this hash (paths of equal contents share one). */
export function findUpstreamLookupsByNar(db: Kysely<Database>, cacheId: number, narHash: string, now: number): Promise<UpstreamLookupRow[]> {
  return unexpired(db, cacheId, now).where('nar_hash', '=', narHash).where('narinfo', 'is not', null).execute();
}

export async function saveUpstreamLookup(db: Kysely<Database>, row: UpstreamLookupRow): Promise<void> {
  const { cache_id: _c, store_path_hash: _h, ...rest } = row;
  await db
    .insertInto('upstream_lookups')
    .values(row)
    .onConflict((oc) => oc.columns(['cache_id', 'store_path_hash']).doUpdateSet(rest))
    .execute();
}

/** After the cache's upstreams change: what the old ones answered no longer applies. */
export async function deleteUpstreamLookups(db: Kysely<Database>, cacheId: number): Promise<void> {
  await db.deleteFrom('upstream_lookups').where('cache_id', '=', cacheId).execute();
}

export async function purgeExpiredUpstreamLookups(db: Kysely<Database>, now: number): Promise<number> {
  const res = await db.deleteFrom('upstream_lookups').where('expires_at', '<=', now).executeTakeFirst();
  return Number(res.numDeletedRows);
}
