import { sql, type Kysely } from 'kysely';
import type { Database } from '../schema.ts';

/**
 * Deletes paths from a cache unless a remaining path of the cache refers to
 * one of them (that would leave an incomplete closure); `force` skips the check.
 */
export async function deletePaths(
  db: Kysely<Database>,
  cacheId: number,
  hashes: string[],
  force: boolean,
): Promise<{ deleted: number; referrers: string[] }> {
  return db.transaction().execute(async (tx) => {
    const doomed = new Set(hashes);
    if (!force) {
      const rows = await tx.selectFrom('objects').select(['store_path', 'store_path_hash', 'references']).where('cache_id', '=', cacheId).execute();
      const referrers = rows
        .filter((r) => !doomed.has(r.store_path_hash))
        .filter((r) => (JSON.parse(r.references) as string[]).some((ref) => doomed.has(ref.slice(0, 32))))
        .map((r) => r.store_path);
      if (referrers.length > 0) return { deleted: 0, referrers };
    }
    let deleted = 0;
    for (let i = 0; i < hashes.length; i += 1000) {
      const res = await tx
        .deleteFrom('objects')
        .where('cache_id', '=', cacheId)
        .where('store_path_hash', 'in', hashes.slice(i, i + 1000))
        .executeTakeFirst();
      deleted += Number(res.numDeletedRows);
    }
    return { deleted, referrers: [] };
  });
}

/** Bytes of the NAR's chunks that other NARs use too (what dedup saved for it). */
export async function narSharing(db: Kysely<Database>, narId: number): Promise<{ sharedBytes: number }> {
  const row = await db
    .selectFrom('nar_chunks as nc')
    .innerJoin('chunks as c', 'c.id', 'nc.chunk_id')
    .select(({ fn }) => fn.coalesce(fn.sum<number>('c.size'), sql.lit(0)).as('shared'))
    .where('nc.nar_id', '=', narId)
    .where(({ exists, selectFrom }) =>
      exists(
        selectFrom('nar_chunks as other')
          .select('other.nar_id')
          .whereRef('other.chunk_id', '=', 'nc.chunk_id')
          .whereRef('other.nar_id', '<>', 'nc.nar_id'),
      ),
    )
    .executeTakeFirst();
  return { sharedBytes: Number(row?.shared ?? 0) };
}
