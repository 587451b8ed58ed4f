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
  return sql`WITH RECURSIVE reached(id) AS (
      SELECT id FROM (
        SELECT e.id FROM objects e
          JOIN object_refs r ON r.cache_id = e.cache_id AND r.ref_hash = e.store_path_hash
          JOIN objects k ON k.id = r.object_id
          WHERE e.cache_id = ${cacheId} AND e.last_accessed_at < ${cutoff} AND k.last_accessed_at >= ${cutoff}
        UNION
        SELECT e.id FROM objects e
          JOIN (${keptPinRevisions(cacheId, now)}) pinned ON pinned.store_path_hash = e.store_path_hash
          WHERE e.cache_id = ${cacheId}
      ) roots
      UNION
      SELECT e.id FROM reached
        JOIN object_refs r ON r.object_id = reached.id
        JOIN objects e ON e.cache_id = ${cacheId} AND e.store_path_hash = r.ref_hash
        WHERE e.last_accessed_at < ${cutoff}
    ),
    doomed(id) AS (
      SELECT id FROM objects WHERE cache_id = ${cacheId} AND last_accessed_at < ${cutoff}
      EXCEPT
      SELECT id FROM reached
    )`;
}
