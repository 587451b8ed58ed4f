import type { Kysely, Selectable } from 'kysely';
import type { Database, UpstreamLookupTable } from '../schema.ts';

export type UpstreamLookupRow = Selectable<UpstreamLookupTable>;

/** The unexpired answer the upstreams gave for a path of the cache. */
export function findUpstreamLookup(db: Kysely<Database>, cacheId: number, hash: string, now: number): Promise<UpstreamLookupRow | undefined> {
  return db
    .selectFrom('upstream_lookups')
    .selectAll()
    .where('cache_id', '=', cacheId)
    .where('store_path_hash', '=', hash)
    .where('expires_at', '>', now)
    .executeTakeFirst();
}

/** The unexpired verified narinfos of the cache whose NAR has this hash (paths of equal contents share one). */
export function findUpstreamLookupsByNar(db: Kysely<Database>, cacheId: number, narHash: string, now: number): Promise<UpstreamLookupRow[]> {
  return db
    .selectFrom('upstream_lookups')
    .selectAll()
    .where('cache_id', '=', cacheId)
    .where('nar_hash', '=', narHash)
    .where('narinfo', 'is not', null)
    .where('expires_at', '>', now)
    .execute();
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
