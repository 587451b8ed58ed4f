import type { Kysely } from 'kysely';
import type { ChunkRow, Database, NarRow } from '../schema.ts';

export function findNarByHash(db: Kysely<Database>, narHash: string): Promise<NarRow | undefined> {
  return db.selectFrom('nars').selectAll().where('nar_hash', '=', narHash).executeTakeFirst();
}

/** A NAR held by the cache (or by one of several), looked up by the name it is served under. */
export async function findNarInCache(
  db: Kysely<Database>,
  cacheIds: number | number[],
  by: { fileHash: string } | { narHash: string },
): Promise<NarRow | undefined> {
  const ids = Array.isArray(cacheIds) ? cacheIds : [cacheIds];
  if (ids.length === 0) return undefined;
  let q = db
    .selectFrom('nars as n')
    .selectAll('n')
    .where(({ exists, selectFrom }) =>
      exists(selectFrom('objects as o').select('o.id').whereRef('o.nar_id', '=', 'n.id').where('o.cache_id', 'in', ids)),
    );
  q = 'fileHash' in by ? q.where('n.file_hash', '=', by.fileHash) : q.where('n.nar_hash', '=', by.narHash);
  return q.executeTakeFirst();
}

export function findNarChunks(db: Kysely<Database>, narId: number): Promise<ChunkRow[]> {
  return db
    .selectFrom('nar_chunks as nc')
    .innerJoin('chunks as c', 'c.id', 'nc.chunk_id')
    .selectAll('c')
    .where('nc.nar_id', '=', narId)
    .orderBy('nc.seq')
    .execute();
}

/**
 * The NAR with this hash, claimed for a push: its `created_at` is set to `now`, so garbage
 * collection (which frees only NARs older than its grace period, re-checked in its DELETE) leaves
 * it alone until the push has referenced it. Undefined if absent, or freed just now.
 */
export function claimNar(db: Kysely<Database>, narHash: string, now: number): Promise<NarRow | undefined> {
  return db.updateTable('nars').set({ created_at: now }).where('nar_hash', '=', narHash).returningAll().executeTakeFirst();
}

/**
 * Records a complete, verified NAR, its chunk list and its listing in one transaction.
 * A NAR with the same hash recorded earlier wins; both callers get its row, claimed like
 * claimChunks claims chunks (`created_at` set anew) so garbage collection leaves it to the push.
 * One freed meanwhile is recorded again.
 */
export async function insertNar(
  db: Kysely<Database>,
  nar: Omit<NarRow, 'id'>,
  chunkIds: number[],
  listing: string | null = null,
): Promise<NarRow> {
  return db.transaction().execute(async (tx) => {
    let inserted: NarRow | undefined;
    while (!inserted) {
      inserted = await tx
        .insertInto('nars')
        .values(nar)
        .onConflict((oc) => oc.column('nar_hash').doNothing())
        .returningAll()
        .executeTakeFirst();
      if (inserted) break;
      const claimed = await claimNar(tx, nar.nar_hash, nar.created_at);
      if (claimed) return claimed;
    }
    const rows = chunkIds.map((chunk_id, seq) => ({ nar_id: inserted.id, seq, chunk_id }));
    for (let i = 0; i < rows.length; i += 1000) {
      await tx.insertInto('nar_chunks').values(rows.slice(i, i + 1000)).execute();
    }
    if (listing !== null) await tx.insertInto('nar_listings').values({ nar_id: inserted.id, listing }).execute();
    return inserted;
  });
}

export async function recordNarUpload(
  db: Kysely<Database>,
  cacheId: number,
  fileName: string,
  narId: number,
  now: number,
): Promise<void> {
  await db
    .insertInto('nar_uploads')
    .values({ cache_id: cacheId, file_name: fileName, nar_id: narId, created_at: now })
    .onConflict((oc) => oc.columns(['cache_id', 'file_name']).doUpdateSet({ nar_id: narId, created_at: now }))
    .execute();
}

export async function findNarUpload(
  db: Kysely<Database>,
  cacheId: number,
  fileName: string,
): Promise<NarRow | undefined> {
  return db
    .selectFrom('nar_uploads as u')
    .innerJoin('nars as n', 'n.id', 'u.nar_id')
    .selectAll('n')
    .where('u.cache_id', '=', cacheId)
    .where('u.file_name', '=', fileName)
    .executeTakeFirst();
}

/** The `.ls` JSON stored at ingest, if there is one. */
export async function findNarListing(db: Kysely<Database>, narId: number): Promise<string | undefined> {
  const row = await db.selectFrom('nar_listings').select('listing').where('nar_id', '=', narId).executeTakeFirst();
  return row?.listing;
}
