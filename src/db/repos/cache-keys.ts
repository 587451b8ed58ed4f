import type { Insertable, Kysely } from 'kysely';
import type { CacheKeyRow, CacheKeyState, CacheKeyTable, Database } from '../schema.ts';

/** The keys of the given caches, oldest first. */
export async function listCacheKeys(db: Kysely<Database>, cacheIds: number[]): Promise<CacheKeyRow[]> {
  if (cacheIds.length === 0) return [];
  return db.selectFrom('cache_keys').selectAll().where('cache_id', 'in', cacheIds).orderBy('created_at').orderBy('id').execute();
}

export function findCacheKey(db: Kysely<Database>, cacheId: number, name: string): Promise<CacheKeyRow | undefined> {
  return db.selectFrom('cache_keys').selectAll().where('cache_id', '=', cacheId).where('name', '=', name).executeTakeFirst();
}

/** Returns false when the cache already has a key of that name (another replica added it first). */
export async function insertCacheKey(db: Kysely<Database>, row: Insertable<CacheKeyTable>): Promise<boolean> {
  const res = await db
    .insertInto('cache_keys')
    .values(row)
    .onConflict((oc) => oc.columns(['cache_id', 'name']).doNothing())
    .executeTakeFirst();
  return Number(res.numInsertedOrUpdatedRows ?? 0) > 0;
}

export async function setCacheKeyState(db: Kysely<Database>, id: number, state: CacheKeyState, now: number): Promise<void> {
  await db
    .updateTable('cache_keys')
    .set({ state, retired_at: state === 'retired' ? now : null })
    .where('id', '=', id)
    .execute();
}
