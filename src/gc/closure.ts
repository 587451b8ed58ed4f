// The closure query of garbage collection, as SQL that runs unchanged on
// SQLite and PostgreSQL (recursive CTEs over object_refs): no cache is ever loaded into memory.
import { sql, type RawBuilder } from 'kysely';
import { keptPinRevisions } from '../db/repos/pins.ts';

/**
 * `WITH RECURSIVE reached, doomed`: the cache's paths to collect. A path is doomed when it was
 * last used before `cutoff` and no kept path reaches it through references, at any depth. A kept
 * path is one used since `cutoff` or held by a pin. The walk starts at the expired paths that a
 * kept path refers to (found through the referee index, so its cost follows the expired paths,
 * not the whole cache) and follows references among expired paths only: a referenced path that
 * is not expired is kept anyway, and so is its closure.
 */
export function doomedPathsCte(cacheId: number, cutoff: number, now: number): RawBuilder<unknown> {
  // CROSS JOIN fixes the join order on SQLite (PostgreSQL plans it like any join): from the
  // path at hand through an index, never a scan of every reference for each path.
  return sql`WITH RECURSIVE reached(id) AS (
      SELECT id FROM (
        SELECT e.id FROM objects e
          WHERE e.cache_id = ${cacheId} AND e.last_accessed_at < ${cutoff}
            AND EXISTS (
              SELECT 1 FROM object_refs r CROSS JOIN objects k
                WHERE r.cache_id = e.cache_id AND r.ref_hash = e.store_path_hash
                  AND k.id = r.object_id AND k.last_accessed_at >= ${cutoff}
            )
        UNION
        SELECT e.id FROM (${keptPinRevisions(cacheId, now)}) pinned CROSS JOIN objects e
          WHERE e.cache_id = ${cacheId} AND e.store_path_hash = pinned.store_path_hash
      ) roots
      UNION
      SELECT e.id FROM reached CROSS JOIN object_refs r CROSS JOIN objects e
        WHERE r.object_id = reached.id
          AND e.cache_id = r.cache_id AND e.store_path_hash = r.ref_hash AND e.last_accessed_at < ${cutoff}
    ),
    doomed(id) AS (
      SELECT id FROM objects WHERE cache_id = ${cacheId} AND last_accessed_at < ${cutoff}
      EXCEPT
      SELECT id FROM reached
    )`;
}
