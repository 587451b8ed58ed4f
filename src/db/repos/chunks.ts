import type { Kysely } from 'kysely';
import type { ChunkRow, Database } from '../schema.ts';
import type { Insertable } from 'kysely';
import type { ChunkTable } from '../schema.ts';

const IN_BATCH = 5000;

export async function findChunksByHash(db: Kysely<Database>, hashes: string[]): Promise<Map<string, ChunkRow>> {
  const found = new Map<string, ChunkRow>();
  for (let i = 0; i < hashes.length; i += IN_BATCH) {
    const rows = await db
      .selectFrom('chunks')
      .selectAll()
      .where('hash', 'in', hashes.slice(i, i + IN_BATCH))
      .execute();
    for (const r of rows) found.set(r.hash, r);
  }
  return found;
}

/**
 * The chunks of `hashes` that exist, claimed for a push: their `created_at` is set to `now`, so
 * garbage collection (which frees only chunks older than its grace period, re-checked in its
 * DELETE) leaves them alone while the push references them. A chunk not returned is absent, or
 * was freed just now: the caller stores it anew.
 */
export async function claimChunks(db: Kysely<Database>, hashes: string[], now: number): Promise<Map<string, ChunkRow>> {
  const found = new Map<string, ChunkRow>();
  for (let i = 0; i < hashes.length; i += IN_BATCH) {
    const rows = await db
      .updateTable('chunks')
      .set({ created_at: now })
      .where('hash', 'in', hashes.slice(i, i + IN_BATCH))
      .returningAll()
      .execute();
    for (const r of rows) found.set(r.hash, r);
  }
  return found;
}

/**
 * Records stored chunks in one statement. Rows another upload recorded first
 * are returned from the table and listed in `lost`: those callers' blobs are
 * redundant and must be deleted.
 */
export async function insertChunks(
  db: Kysely<Database>,
  rows: Insertable<ChunkTable>[],
): Promise<{ chunks: ChunkRow[]; lost: Insertable<ChunkTable>[] }> {
  if (rows.length === 0) return { chunks: [], lost: [] };
  const inserted = await db
    .insertInto('chunks')
    .values(rows)
    .onConflict((oc) => oc.column('hash').doNothing())
    .returningAll()
    .execute();
  const won = new Set(inserted.map((r) => r.hash));
  const lost = rows.filter((r) => !won.has(r.hash));
  const existing = await findChunksByHash(db, lost.map((r) => r.hash));
  return { chunks: [...inserted, ...existing.values()], lost };
}

/**
 * Of `hashes`, those the caller may learn exist: chunks of NARs held by one of
 * `pullableCacheIds`, or staged for `stagingCacheId` by an earlier (possibly
 * interrupted) push. Everything else is reported missing, so a chunk's
 * existence never leaks across caches the caller cannot read.
 */
export async function findVisibleChunks(
  db: Kysely<Database>,
  hashes: string[],
  pullableCacheIds: number[],
  stagingCacheId: number,
): Promise<Map<string, ChunkRow>> {
  const visible = new Map<string, ChunkRow>();
  for (let i = 0; i < hashes.length; i += IN_BATCH) {
    const batch = hashes.slice(i, i + IN_BATCH);
    const staged = await db
      .selectFrom('chunks as c')
      .innerJoin('chunk_stagings as s', 's.chunk_id', 'c.id')
      .selectAll('c')
      .where('s.cache_id', '=', stagingCacheId)
      .where('c.hash', 'in', batch)
      .execute();
    for (const r of staged) visible.set(r.hash, r);
    if (pullableCacheIds.length === 0) continue;
    const reachable = await db
      .selectFrom('chunks as c')
      .selectAll('c')
      .where('c.hash', 'in', batch)
      .where(({ exists, selectFrom }) =>
        exists(
          selectFrom('nar_chunks as nc')
            .innerJoin('objects as o', 'o.nar_id', 'nc.nar_id')
            .select('nc.chunk_id')
            .whereRef('nc.chunk_id', '=', 'c.id')
            .where('o.cache_id', 'in', pullableCacheIds),
        ),
      )
      .execute();
    for (const r of reachable) visible.set(r.hash, r);
  }
  return visible;
}

export async function stageChunks(
  db: Kysely<Database>,
  cacheId: number,
  chunkIds: number[],
  now: number,
): Promise<void> {
  if (chunkIds.length === 0) return;
  await db
    .insertInto('chunk_stagings')
    .values(chunkIds.map((chunk_id) => ({ cache_id: cacheId, chunk_id, created_at: now })))
    .onConflict((oc) => oc.columns(['cache_id', 'chunk_id']).doUpdateSet({ created_at: now }))
    .execute();
}
