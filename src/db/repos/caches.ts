import type { Kysely } from 'kysely';
import type { CacheRow, CacheTable, Database } from '../schema.ts';
import type { Insertable, Updateable } from 'kysely';

export type CachePatch = Omit<Updateable<CacheTable>, 'id' | 'name' | 'created_at'>;

export function findCacheByName(db: Kysely<Database>, name: string): Promise<CacheRow | undefined> {
  return db.selectFrom('caches').selectAll().where('name', '=', name).executeTakeFirst();
}

export function listCaches(db: Kysely<Database>): Promise<CacheRow[]> {
  return db.selectFrom('caches').selectAll().orderBy('name').execute();
}

/** Returns undefined when a cache of that name already exists. */
export async function insertCache(
  db: Kysely<Database>,
  row: Insertable<CacheTable>,
): Promise<CacheRow | undefined> {
  const inserted = await db
    .insertInto('caches')
    .values(row)
    .onConflict((oc) => oc.column('name').doNothing())
    .returningAll()
    .executeTakeFirst();
  return inserted;
}

export async function updateCache(db: Kysely<Database>, id: number, patch: CachePatch): Promise<void> {
  if (Object.keys(patch).length === 0) return;
  await db.updateTable('caches').set(patch).where('id', '=', id).execute();
}

export async function deleteCache(db: Kysely<Database>, id: number): Promise<boolean> {
  const res = await db.deleteFrom('caches').where('id', '=', id).executeTakeFirst();
  return Number(res.numDeletedRows) > 0;
}
