import { Migrator, type Migration, type MigrationProvider } from 'kysely';
import type { Db, DialectKind } from './dialect.ts';
import { initialSchema } from './migrations/0001_initial.ts';
import { leases } from './migrations/0002_leases.ts';
import { chunkStorageKeyIndex } from './migrations/0003_chunk_storage_key.ts';
import { upstreams } from './migrations/0008_upstreams.ts';

/** Every migration, in order; append only. */
const MIGRATIONS: Record<string, (kind: DialectKind) => Migration> = {
  '0001_initial': initialSchema,
  '0002_leases': () => leases,
  '0003_chunk_storage_key': () => chunkStorageKeyIndex,
  '0008_upstreams': () => upstreams,
};

export const MIGRATION_NAMES = Object.keys(MIGRATIONS);

/**
 * Brings the schema up to date. Kysely's migrator takes a lock (an advisory
 * lock on PostgreSQL), so several replicas starting at once are safe.
 */
export async function migrateToLatest(db: Db): Promise<string[]> {
  const provider: MigrationProvider = {
    getMigrations: async () => Object.fromEntries(Object.entries(MIGRATIONS).map(([name, make]) => [name, make(db.kind)])),
  };
  const migrator = new Migrator({ db: db.kysely, provider });
  const { error, results } = await migrator.migrateToLatest();
  if (error) throw error instanceof Error ? error : new Error(String(error));
  return (results ?? []).filter((r) => r.status === 'Success').map((r) => r.migrationName);
}
