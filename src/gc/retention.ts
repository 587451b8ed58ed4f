import type { Kysely } from 'kysely';
import type { Database } from '../db/schema.ts';

const DELETE_BATCH = 1000;

/** Seconds an unused path is kept (0 = forever): pushed paths, and paths pulled from an upstream. */
export interface Retention {
  own: number;
  upstream: number;
}

/**
 * Removes the cache's paths unused for their retention — except those a
 * kept path refers to, directly or not: a closure in the cache is never
 * broken, so any path Nix can find here can still be substituted whole.
 */
export async function expireUnusedPaths(
  db: Kysely<Database>,
  cacheId: number,
  retention: Retention,
  now = Date.now(),
): Promise<number> {
  const cutoff = (seconds: number) => (seconds > 0 ? now - seconds * 1000 : -Infinity);
  const ownCutoff = cutoff(retention.own);
  const upstreamCutoff = cutoff(retention.upstream);
  const rows = await db
    .selectFrom('objects')
    .select(['id', 'store_path_hash', 'references', 'last_accessed_at', 'upstream'])
    .where('cache_id', '=', cacheId)
    .execute();
  const byHash = new Map(rows.map((r) => [r.store_path_hash, r]));
  const expired = new Set(
    rows.filter((r) => r.last_accessed_at < (r.upstream === null ? ownCutoff : upstreamCutoff)).map((r) => r.store_path_hash),
  );
  const keep = rows.filter((r) => !expired.has(r.store_path_hash));
  while (keep.length > 0) {
    const r = keep.pop()!;
    for (const ref of JSON.parse(r.references) as string[]) {
      const hash = ref.slice(0, 32);
      if (expired.delete(hash)) keep.push(byHash.get(hash)!);
    }
  }
  const ids = [...expired].map((h) => byHash.get(h)!.id);
  for (let i = 0; i < ids.length; i += DELETE_BATCH) {
    await db.deleteFrom('objects').where('id', 'in', ids.slice(i, i + DELETE_BATCH)).execute();
  }
  return ids.length;
}
