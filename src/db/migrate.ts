import { Migrator, type Migration, type MigrationProvider } from 'kysely';
import type { Db, DialectKind } from './dialect.ts';
import { initialSchema } from './migrations/0001_initial.ts';
import { leases } from './migrations/0002_leases.ts';
import { chunkStorageKeyIndex } from './migrations/0003_chunk_storage_key.ts';
import { packs } from './migrations/0004_packs.ts';
import { gcV2 } from './migrations/0005_gc_v2.ts';
import { usageHistory } from './migrations/0006_usage_history.ts';
import { cacheKeys } from './migrations/0007_cache_keys.ts';
import { upstreams } from './migrations/0008_upstreams.ts';

/** Every migration, in order; append only. */
const MIGRATIONS: Record<string, (kind: DialectKind) => Migration> = {
  '0001_initial': initialSchema,
  '0002_leases': () => leases,
  '0003_chunk_storage_key': () => chunkStorageKeyIndex,
  '0004_packs': packs,
  '0005_gc_v2': gcV2,
  '0006_usage_history': usageHistory,
  '0007_cache_keys': cacheKeys,
  '0008_upstreams': () => upstreams,
};

export const MIGRATION_NAMES = Object.keys(MIGRATIONS);

/**
 * Brings the schema up to date. Kysely's migrator takes a lock (an advisory
 * lock on PostgreSQL), so several replicas starting at once are safe.
 */
export function migrateToLatest(db: Db): Promise<string[]> {
  return migrateTo(db, MIGRATION_NAMES.at(-1)!);
}

/** Brings the schema up to and including `target` (tests of a migration's data changes start below it). */
export async function migrateTo(db: Db, target: string): Promise<string[]> {
  const provider: MigrationProvider = {
    getMigrations: async () => Object.fromEntries(Object.entries(MIGRATIONS).map(([name, make]) => [name, make(db.kind)])),
  };
  const migrator = new Migrator({ db: db.kysely, provider });
  const { error, results } = await migrator.migrateTo(target);
  if (error) throw error instanceof Error ? error : new Error(String(error));
  return (results ?? []).filter((r) => r.status === 'Success').map((r) => r.migrationName);
}
