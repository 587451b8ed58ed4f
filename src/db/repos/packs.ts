import { sql, type Kysely } from 'kysely';
import type { ChunkRow, Database, PackRow } from '../schema.ts';

const IN_BATCH = 1000;

export async function findPacks(db: Kysely<Database>, ids: number[]): Promise<Map<number, PackRow>> {
  const found = new Map<number, PackRow>();
  for (let i = 0; i < ids.length; i += IN_BATCH) {
    const rows = await db.selectFrom('packs').selectAll().where('id', 'in', ids.slice(i, i + IN_BATCH)).execute();
    for (const r of rows) found.set(Number(r.id), r);
  }
  return found;
}

/** Of `keys`, those a pack row names (the rest are objects no row will ever read). */
export async function knownPackKeys(db: Kysely<Database>, keys: string[]): Promise<Set<string>> {
  if (keys.length === 0) return new Set();
  const rows = await db.selectFrom('packs').select('storage_key').where('storage_key', 'in', keys).execute();
  return new Set(rows.map((r) => r.storage_key));
}

export interface PackUsage {
  pack: PackRow;
  liveBytes: number;
}

/** Packs older than `cutoff` and not retired, with the bytes of the chunks still in them, oldest first. */
export async function packUsage(db: Kysely<Database>, cutoff: number): Promise<PackUsage[]> {
  const rows = await db
    .selectFrom('packs as p')
    .leftJoin('chunks as c', 'c.pack_id', 'p.id')
    .select(['p.id', 'p.storage_key', 'p.size', 'p.created_at', 'p.retired_at'])
    .select(({ fn }) => fn.coalesce(fn.sum<number>('c.stored_size'), sql<number>`0`).as('live'))
    .where('p.retired_at', 'is', null)
    .where('p.created_at', '<', cutoff)
    .groupBy(['p.id', 'p.storage_key', 'p.size', 'p.created_at', 'p.retired_at'])
    .orderBy('p.id')
    .execute();
  return rows.map(({ live, ...pack }) => ({ pack, liveBytes: Number(live) }));
}

export function liveChunksOf(db: Kysely<Database>, packId: number): Promise<ChunkRow[]> {
  return db.selectFrom('chunks').selectAll().where('pack_id', '=', packId).orderBy('pack_offset').execute();
}

/** Marks packs no chunk lives in any more; their objects are deleted after the read grace. */
export async function retireEmptyPacks(db: Kysely<Database>, ids: number[], now: number): Promise<number> {
  if (ids.length === 0) return 0;
  const r = await db
    .updateTable('packs')
    .set({ retired_at: now })
    .where('id', 'in', ids)
    .where('retired_at', 'is', null)
    .where(({ not, exists, selectFrom }) => not(exists(selectFrom('chunks as c').select('c.id').whereRef('c.pack_id', '=', 'packs.id'))))
    .executeTakeFirst();
  return Number(r.numUpdatedRows);
}

/** Deletes the rows of packs retired before `cutoff` and returns them (their objects go next). */
export async function deleteRetiredPacks(db: Kysely<Database>, cutoff: number): Promise<PackRow[]> {
  return db.deleteFrom('packs').where('retired_at', '<', cutoff).returningAll().execute();
}
