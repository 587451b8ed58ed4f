import { sql, type Kysely, type RawBuilder } from 'kysely';
import type { Database } from '../schema.ts';
import { keptPinRevisions } from './pins.ts';

/**
 * `WITH RECURSIVE doomed`: the given paths of the cache and every path that refers to one of
 * them, at any depth — what must go with them for no closure to break.
 */
function referrersClosureCte(cacheId: number, hashes: string[]): RawBuilder<unknown> {
  return sql`WITH RECURSIVE doomed(id, hash) AS (
      SELECT id, store_path_hash FROM objects WHERE cache_id = ${cacheId} AND store_path_hash IN (${sql.join(hashes)})
      UNION
      SELECT o.id, o.store_path_hash FROM doomed
        JOIN object_refs r ON r.cache_id = ${cacheId} AND r.ref_hash = doomed.hash
        JOIN objects o ON o.id = r.object_id
    )`;
}

export type DeletePathsOutcome =
  | { deleted: number; cascaded: string[] }
  /** Refused: these remaining paths refer to the doomed ones. */
  | { referrers: string[] }
  /** Refused: these pins hold doomed paths. */
  | { pinnedBy: string[] };

/**
 * Deletes paths from a cache, in one transaction. A remaining path that refers to one of them
 * would be left with an incomplete closure: the deletion is refused, unless `cascade` deletes
 * every such referrer too (at any depth; they are listed) or `force` skips the check. A path a
 * pin keeps is never deleted: the pin must be removed first.
 */
export async function deletePaths(
  db: Kysely<Database>,
  cacheId: number,
  hashes: string[],
  o: { cascade: boolean; force: boolean },
): Promise<DeletePathsOutcome> {
  return db.transaction().execute(async (tx) => {
    const asked = new Set(hashes);
    const doomed = o.cascade
      ? (await sql<{ store_path_hash: string; store_path: string }>`${referrersClosureCte(cacheId, hashes)}
          SELECT o.store_path_hash, o.store_path FROM objects o WHERE o.id IN (SELECT id FROM doomed) ORDER BY o.store_path`.execute(tx)).rows
      : await tx
          .selectFrom('objects')
          .select(['store_path_hash', 'store_path'])
          .where('cache_id', '=', cacheId)
          .where('store_path_hash', 'in', hashes)
          .execute();
    const doomedHashes = new Set(doomed.map((d) => d.store_path_hash));
    if (!o.cascade && !o.force) {
      const referrers = await tx
        .selectFrom('object_refs as r')
        .innerJoin('objects as o', 'o.id', 'r.object_id')
        .select(['o.store_path_hash', 'o.store_path'])
        .distinct()
        .where('r.cache_id', '=', cacheId)
        .where('r.ref_hash', 'in', hashes)
        .execute();
      const outside = referrers.filter((r) => !doomedHashes.has(r.store_path_hash)).map((r) => r.store_path);
      if (outside.length > 0) return { referrers: outside.sort() };
    }
    const pinnedBy = await pinsHolding(tx, cacheId, [...doomedHashes]);
    if (pinnedBy.length > 0) return { pinnedBy };
    let deleted = 0;
    const all = [...doomedHashes];
    for (let i = 0; i < all.length; i += 1000) {
      const res = await tx
        .deleteFrom('objects')
        .where('cache_id', '=', cacheId)
        .where('store_path_hash', 'in', all.slice(i, i + 1000))
        .executeTakeFirst();
      deleted += Number(res.numDeletedRows);
    }
    return { deleted, cascaded: doomed.filter((d) => !asked.has(d.store_path_hash)).map((d) => d.store_path) };
  });
}

/** Names of the cache's pins whose kept targets include one of these paths. */
async function pinsHolding(db: Kysely<Database>, cacheId: number, hashes: string[]): Promise<string[]> {
  const names = new Set<string>();
  for (let i = 0; i < hashes.length; i += 1000) {
    const { rows } = await sql<{ name: string }>`SELECT DISTINCT p.name FROM pins p
      JOIN (${keptPinRevisions(cacheId, Date.now())}) kept ON kept.pin_id = p.id
      WHERE kept.store_path_hash IN (${sql.join(hashes.slice(i, i + 1000))})`.execute(db);
    for (const r of rows) names.add(r.name);
  }
  return [...names].sort();
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
