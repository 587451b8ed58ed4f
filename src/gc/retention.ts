import { sql, type Kysely } from 'kysely';
import type { Database } from '../db/schema.ts';
import { doomedPathsCte, type Cutoffs } from './closure.ts';

/** Store paths a report lists; the count is always exact. */
export const LISTED_PATHS = 1000;
const IN_BATCH = 5000;

export interface CacheCollection {
  paths: number;
  /** The first LISTED_PATHS of them. */
  storePaths: string[];
  /** Compressed bytes of the NARs that no path holds any more once these are gone. */
  narBytes: number;
}

/**
 * Collects the cache's paths unused since their cutoff (`cutoffs.own` for pushed paths,
 * `cutoffs.upstream` for paths pulled from an upstream) that no kept path (used since, or pinned)
 * reaches through references: a closure in the cache is never broken, so any path Nix can find
 * here can still be substituted whole. The decision and the deletion are one statement. A dry
 * run answers the same question and deletes nothing.
 */
export async function collectUnusedPaths(
  db: Kysely<Database>,
  cacheId: number,
  cutoffs: Cutoffs,
  now: number,
  dryRun: boolean,
): Promise<CacheCollection> {
  const doomed = doomedPathsCte(cacheId, cutoffs, now);
  if (dryRun) {
    const { rows } = await sql<{ paths: number; nar_bytes: number | null }>`${doomed}
      SELECT
        (SELECT COUNT(*) FROM doomed) AS paths,
        (SELECT SUM(n.file_size) FROM nars n
          WHERE n.id IN (SELECT o.nar_id FROM objects o WHERE o.id IN (SELECT id FROM doomed))
            AND NOT EXISTS (SELECT 1 FROM objects x WHERE x.nar_id = n.id AND x.id NOT IN (SELECT id FROM doomed))
        ) AS nar_bytes`.execute(db);
    const listed = await sql<{ store_path: string }>`${doomed}
      SELECT o.store_path FROM objects o WHERE o.id IN (SELECT id FROM doomed) ORDER BY o.store_path LIMIT ${LISTED_PATHS}`.execute(db);
    return {
      paths: Number(rows[0].paths),
      storePaths: listed.rows.map((r) => r.store_path),
      narBytes: Number(rows[0].nar_bytes ?? 0),
    };
  }
  const { rows } = await sql<{ store_path: string; nar_id: number }>`${doomed}
    DELETE FROM objects WHERE id IN (SELECT id FROM doomed) RETURNING store_path, nar_id`.execute(db);
  return {
    paths: rows.length,
    storePaths: rows.slice(0, LISTED_PATHS).map((r) => r.store_path),
    narBytes: await unheldNarBytes(db, [...new Set(rows.map((r) => Number(r.nar_id)))]),
  };
}

/** Compressed bytes of those NARs that no path of any cache holds. */
async function unheldNarBytes(db: Kysely<Database>, narIds: number[]): Promise<number> {
  let bytes = 0;
  for (let i = 0; i < narIds.length; i += IN_BATCH) {
    const row = await db
      .selectFrom('nars as n')
      .select(({ fn }) => fn.sum<number>('n.file_size').as('bytes'))
      .where('n.id', 'in', narIds.slice(i, i + IN_BATCH))
      .where(({ not, exists, selectFrom }) => not(exists(selectFrom('objects as o').select('o.id').whereRef('o.nar_id', '=', 'n.id'))))
      .executeTakeFirst();
    bytes += Number(row?.bytes ?? 0);
  }
  return bytes;
}
