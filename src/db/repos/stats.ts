import type { Kysely } from 'kysely';
import type { Database } from '../schema.ts';

export interface StorageStats {
  paths: number;
  /** Sum of the NAR sizes of the paths (logical: a NAR held by two paths counts twice). */
  nar_bytes: number;
  /** Distinct chunks, their uncompressed bytes and the bytes their stored frames take. */
  chunks: number;
  chunk_bytes: number;
  stored_bytes: number;
}

// PostgreSQL returns counts and sums of BIGINT as strings, and SUM of no rows is NULL.
const num = (v: unknown) => Number(v ?? 0);

/**
 * One query. For a cache: its paths and the distinct chunks its NARs use
 * (a chunk shared by several NARs counts once). Without a cache: every path
 * and every stored chunk, staged ones included.
 */
export async function storageStats(db: Kysely<Database>, cacheId?: number): Promise<StorageStats> {
  const scoped = cacheId !== undefined;
  const row = await db
    .selectFrom('chunks as c')
    .$if(scoped, (q) =>
      q.where(({ exists, selectFrom }) =>
        exists(
          selectFrom('nar_chunks as nc')
            .innerJoin('objects as o', 'o.nar_id', 'nc.nar_id')
            .select('nc.chunk_id')
            .whereRef('nc.chunk_id', '=', 'c.id')
            .where('o.cache_id', '=', cacheId!),
        ),
      ),
    )
    .select(({ fn, selectFrom }) => [
      fn.countAll().as('chunks'),
      fn.sum('c.size').as('chunk_bytes'),
      fn.sum('c.stored_size').as('stored_bytes'),
      selectFrom('objects as o')
        .$if(scoped, (q) => q.where('o.cache_id', '=', cacheId!))
        .select(({ fn }) => fn.countAll().as('n'))
        .as('paths'),
      selectFrom('objects as o')
        .innerJoin('nars as n', 'n.id', 'o.nar_id')
        .$if(scoped, (q) => q.where('o.cache_id', '=', cacheId!))
        .select(({ fn }) => fn.sum('n.nar_size').as('b'))
        .as('nar_bytes'),
    ])
    .executeTakeFirstOrThrow();
  return {
    paths: num(row.paths),
    nar_bytes: num(row.nar_bytes),
    chunks: num(row.chunks),
    chunk_bytes: num(row.chunk_bytes),
    stored_bytes: num(row.stored_bytes),
  };
}

export async function countCaches(db: Kysely<Database>): Promise<number> {
  const row = await db.selectFrom('caches').select(({ fn }) => fn.countAll().as('n')).executeTakeFirstOrThrow();
  return num(row.n);
}
