import type { ExpressionBuilder, Kysely } from 'kysely';
import type { Database } from '../db/schema.ts';

export interface SweepResult {
  uploads: number;
  stagings: number;
  nars: number;
  chunks: number;
  /** Stored bytes of the deleted chunks. */
  chunkBytes: number;
}

const CHUNK_BATCH = 1000;

/** No NAR uses the chunk and no push in progress has staged it. */
function unusedChunk(eb: ExpressionBuilder<Database, 'chunks'>) {
  return eb.and([
    eb.not(eb.exists(eb.selectFrom('nar_chunks').select('nar_chunks.chunk_id').whereRef('nar_chunks.chunk_id', '=', 'chunks.id'))),
    eb.not(
      eb.exists(eb.selectFrom('chunk_stagings').select('chunk_stagings.chunk_id').whereRef('chunk_stagings.chunk_id', '=', 'chunks.id')),
    ),
  ]);
}

/**
 * Frees what no cache uses any more, bottom-up: stale upload records, then
 * NARs no path holds, then chunks no NAR uses. Anything younger than `cutoff`
 * is left alone — it may belong to a push in progress. Only rows are deleted
 * here: a dead chunk's bytes stay in its pack until ChunkStore.compact()
 * rewrites the pack, so no row ever points at nothing.
 */
export async function sweepUnreferenced(db: Kysely<Database>, cutoff: number): Promise<SweepResult> {
  const uploads = await db.deleteFrom('nar_uploads').where('created_at', '<', cutoff).executeTakeFirst();
  const stagings = await db.deleteFrom('chunk_stagings').where('created_at', '<', cutoff).executeTakeFirst();
  const nars = await db
    .deleteFrom('nars')
    .where('created_at', '<', cutoff)
    .where(({ not, exists, selectFrom }) =>
      not(exists(selectFrom('objects as o').select('o.id').whereRef('o.nar_id', '=', 'nars.id'))),
    )
    .where(({ not, exists, selectFrom }) =>
      not(exists(selectFrom('nar_uploads as u').select('u.nar_id').whereRef('u.nar_id', '=', 'nars.id'))),
    )
    .executeTakeFirst();
  let chunks = 0;
  let chunkBytes = 0;
  for (;;) {
    const candidates = await db
      .selectFrom('chunks')
      .select('id')
      .where('created_at', '<', cutoff)
      .where(unusedChunk)
      .limit(CHUNK_BATCH)
      .execute();
    if (candidates.length === 0) break;
    // Re-checked in the DELETE itself: a push may have started using (or claimed) a chunk since the SELECT.
    const deleted = await db
      .deleteFrom('chunks')
      .where('id', 'in', candidates.map((c) => c.id))
      .where('created_at', '<', cutoff)
      .where(unusedChunk)
      .returning('stored_size')
      .execute();
    chunks += deleted.length;
    for (const d of deleted) chunkBytes += Number(d.stored_size);
    if (candidates.length < CHUNK_BATCH) break;
  }
  return {
    uploads: Number(uploads.numDeletedRows),
    stagings: Number(stagings.numDeletedRows),
    nars: Number(nars.numDeletedRows),
    chunks,
    chunkBytes,
  };
}
