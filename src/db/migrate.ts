import { Migrator, type Migration, type MigrationProvider } from 'kysely';
import type { Db } from './dialect.ts';
import { initialSchema } from './migrations/0001_initial.ts';
import { leases } from './migrations/0002_leases.ts';

function migrationsFor(db: Db): Record<string, Migration> {
  return { '0001_initial': initialSchema(db.kind), '0002_leases': leases };
}

/**
 * Brings the schema up to date. Kysely's migrator takes a lock (an advisory
 * lock on PostgreSQL), so several replicas starting at once are safe.
 */
export async function migrateToLatest(db: Db): Promise<string[]> {
  const provider: MigrationProvider = { getMigrations: async () => migrationsFor(db) };
  const migrator = new Migrator({ db: db.kysely, provider });
  const { error, results } = await migrator.migrateToLatest();
  if (error) throw error instanceof Error ? error : new Error(String(error));
  return (results ?? []).filter((r) => r.status === 'Success').map((r) => r.migrationName);
}
