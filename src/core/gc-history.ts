import type { Kysely } from 'kysely';
import type { Database } from '../db/schema.ts';
import { gcRows } from '../db/repos/usage.ts';
import type { GcHour } from '../api/v1.ts';

/**
 * Recent garbage collection, per hour, newest first: passes (every replica's), failures,
 * and what they removed. The dashboard reads GC history only through this function.
 */
export async function recentGcHistory(db: Kysely<Database>, since: number): Promise<GcHour[]> {
  return (await gcRows(db, since)).map((r) => ({
    hour: new Date(Number(r.hour)).toISOString(),
    passes: Number(r.passes),
    failures: Number(r.failures),
    paths_expired: Number(r.paths_expired),
    nars_deleted: Number(r.nars_deleted),
    chunks_deleted: Number(r.chunks_deleted),
    bytes_freed: Number(r.bytes_freed),
  }));
}
