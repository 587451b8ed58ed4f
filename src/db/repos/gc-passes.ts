import type { Kysely } from 'kysely';
import type { Database, GcPassTable } from '../schema.ts';
import type { Insertable, Selectable } from 'kysely';

/** Passes kept for the dashboard; older ones are dropped as new ones are recorded. */
const KEPT_PASSES = 100;

export async function recordGcPass(db: Kysely<Database>, pass: Insertable<GcPassTable>): Promise<void> {
  const { id } = await db.insertInto('gc_passes').values(pass).returning('id').executeTakeFirstOrThrow();
  await db.deleteFrom('gc_passes').where('id', '<=', Number(id) - KEPT_PASSES).execute();
}

export function listGcPasses(db: Kysely<Database>, limit: number): Promise<Selectable<GcPassTable>[]> {
  return db.selectFrom('gc_passes').selectAll().orderBy('id', 'desc').limit(limit).execute();
}
