// The closure query of garbage collection, as SQL that runs unchanged on
// SQLite and PostgreSQL (recursive CTEs over object_refs): no cache is ever loaded into memory.
import { sql, type RawBuilder } from 'kysely';
import { keptPinRevisions } from '../db/repos/pins.ts';

/**
 * Last use before which a path is expired: one for paths pushed to the cache, one for paths pulled
 * from an upstream (they can be fetched again). NEVER_EXPIRES keeps them forever.
 */
export interface Cutoffs {
  own: number;
  upstream: number;
}

/** A cutoff no timestamp is below (timestamps are unix milliseconds). */
export const NEVER_EXPIRES = -1;

/** The path `alias` was last used before its cutoff. */
function expired(alias: 'e' | 'k' | 'o', c: Cutoffs): RawBuilder<unknown> {
  // The casts type the parameters for PostgreSQL, which cannot infer them inside CASE.
  return sql`${sql.ref(`${alias}.last_accessed_at`)} < (CASE WHEN ${sql.ref(`${alias}.upstream`)} IS NULL THEN CAST(${c.own} AS BIGINT) ELSE CAST(${c.upstream} AS BIGINT) END)`;
}

/**
 * `WITH RECURSIVE reached, doomed`: the cache's paths to collect. A path is doomed when it was
 * last used before its cutoff and no kept path reaches it through references, at any depth. A kept
 * path is one used since its cutoff or held by a pin. The walk starts at the expired paths that a
 * kept path refers to (found through the referee index, so its cost follows the expired paths,
 * not the whole cache) and follows references among expired paths only: a referenced path that
 * is not expired is kept anyway, and so is its closure.
 */
export function doomedPathsCte(cacheId: number, cutoffs: Cutoffs, now: number): RawBuilder<unknown> {
  // CROSS JOIN fixes the join order on SQLite (PostgreSQL plans it like any join): from the
  // path at hand through an index, never a scan of every reference for each path.
  return sql`WITH RECURSIVE reached(id) AS (
      SELECT id FROM (
        SELECT e.id FROM objects e
          WHERE e.cache_id = ${cacheId} AND ${expired('e', cutoffs)}
            AND EXISTS (
              SELECT 1 FROM object_refs r CROSS JOIN objects k
                WHERE r.cache_id = e.cache_id AND r.ref_hash = e.store_path_hash
                  AND k.id = r.object_id AND NOT (${expired('k', cutoffs)})
            )
        UNION
        SELECT e.id FROM (${keptPinRevisions(cacheId, now)}) pinned CROSS JOIN objects e
          WHERE e.cache_id = ${cacheId} AND e.store_path_hash = pinned.store_path_hash
      ) roots
      UNION
      SELECT e.id FROM reached CROSS JOIN object_refs r CROSS JOIN objects e
        WHERE r.object_id = reached.id
          AND e.cache_id = r.cache_id AND e.store_path_hash = r.ref_hash AND ${expired('e', cutoffs)}
    ),
    doomed(id) AS (
      SELECT o.id FROM objects o WHERE o.cache_id = ${cacheId} AND ${expired('o', cutoffs)}
      EXCEPT
      SELECT id FROM reached
    )`;
}
