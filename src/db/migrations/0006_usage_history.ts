import type { Kysely } from 'kysely';
import type { DialectKind } from '../dialect.ts';

// The dashboard's history: per cache and hour, counters every replica adds its batches to, the storage
// size last seen that hour, recent pushes, and GC passes per hour. Pruned to metrics.history_days.
export function usageHistory(kind: DialectKind) {
  return {
    async up(db: Kysely<any>): Promise<void> {
      let usage = db.schema
        .createTable('usage_hourly')
        .addColumn('cache_id', 'bigint', (c) => c.notNull())
        .addColumn('hour', 'bigint', (c) => c.notNull());
      for (const col of ['narinfo_hits', 'narinfo_misses', 'nar_downloads', 'bytes_served', 'bytes_received', 'pushes_ok', 'pushes_failed']) {
        usage = usage.addColumn(col, 'bigint', (c) => c.notNull().defaultTo(0));
      }
      await usage
        .addColumn('paths', 'bigint')
        .addColumn('nar_bytes', 'bigint')
        .addColumn('stored_bytes', 'bigint')
        .addPrimaryKeyConstraint('usage_hourly_pk', ['cache_id', 'hour'])
        .execute();
      await db.schema.createIndex('usage_hourly_hour').on('usage_hourly').column('hour').execute();

      const id = kind === 'sqlite' ? 'integer' : 'bigserial';
      await db.schema
        .createTable('push_log')
        .addColumn('id', id, (c) => (kind === 'sqlite' ? c.primaryKey().autoIncrement() : c.primaryKey()))
        .addColumn('cache_id', 'bigint', (c) => c.notNull())
        .addColumn('at', 'bigint', (c) => c.notNull())
        .addColumn('sub', 'varchar(256)', (c) => c.notNull())
        .addColumn('via', 'varchar(32)', (c) => c.notNull())
        .addColumn('paths', 'bigint', (c) => c.notNull())
        .addColumn('bytes', 'bigint', (c) => c.notNull())
        .execute();
      await db.schema.createIndex('push_log_cache_at').on('push_log').columns(['cache_id', 'at']).execute();

      await db.schema
        .createTable('gc_hourly')
        .addColumn('hour', 'bigint', (c) => c.primaryKey())
        .addColumn('passes', 'bigint', (c) => c.notNull().defaultTo(0))
        .addColumn('failures', 'bigint', (c) => c.notNull().defaultTo(0))
        .addColumn('paths_expired', 'bigint', (c) => c.notNull().defaultTo(0))
        .addColumn('nars_deleted', 'bigint', (c) => c.notNull().defaultTo(0))
        .addColumn('chunks_deleted', 'bigint', (c) => c.notNull().defaultTo(0))
        .addColumn('bytes_freed', 'bigint', (c) => c.notNull().defaultTo(0))
        .execute();
    },
    async down(): Promise<void> {
      throw new Error('migrations are append-only');
    },
  };
}
