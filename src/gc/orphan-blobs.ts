import type { Kysely } from 'kysely';
import type { Database } from '../db/schema.ts';
import type { BlobStore } from '../storage/types.ts';

const BATCH = 1000;

/**
 * Deletes chunk blobs that no chunk row names: what a process killed between
 * storing a blob and recording it leaves behind. Only blobs older than
 * `cutoff` are considered, so an upload in progress is never touched.
 */
export async function sweepOrphanBlobs(db: Kysely<Database>, blobs: BlobStore, cutoff: number): Promise<number> {
  let deleted = 0;
  let batch: string[] = [];
  const flush = async () => {
    const known = await db.selectFrom('chunks').select('storage_key').where('storage_key', 'in', batch).execute();
    const referenced = new Set(known.map((r) => r.storage_key));
    const orphans = batch.filter((k) => !referenced.has(k));
    await blobs.delete(orphans);
    deleted += orphans.length;
    batch = [];
  };
  for await (const blob of blobs.list('chunks/')) {
    if (blob.modifiedAt >= cutoff) continue;
    batch.push(blob.key);
    if (batch.length >= BATCH) await flush();
  }
  if (batch.length > 0) await flush();
  return deleted;
}
