import type { Kysely } from 'kysely';

// Pull-through (issue 11): a cache's upstreams, the marker on paths that came from one, their own
// retention, and the verified upstream narinfos (or misses) that every replica consults.
export const upstreams = {
  async up(db: Kysely<any>): Promise<void> {
    await db.schema.alterTable('caches').addColumn('upstreams', 'text', (c) => c.notNull().defaultTo('[]')).execute();
    await db.schema.alterTable('caches').addColumn('upstream_retention_seconds', 'bigint').execute();
    await db.schema.alterTable('objects').addColumn('upstream', 'text').execute();
    await db.schema
      .createTable('upstream_lookups')
      .addColumn('cache_id', 'bigint', (c) => c.notNull().references('caches.id').onDelete('cascade'))
      .addColumn('store_path_hash', 'varchar(32)', (c) => c.notNull())
      .addColumn('upstream', 'text')
      .addColumn('narinfo', 'text')
      .addColumn('nar_hash', 'varchar(64)')
      .addColumn('expires_at', 'bigint', (c) => c.notNull())
      .addPrimaryKeyConstraint('upstream_lookups_pk', ['cache_id', 'store_path_hash'])
      .execute();
    await db.schema.createIndex('upstream_lookups_nar').on('upstream_lookups').columns(['cache_id', 'nar_hash']).execute();
    await db.schema.createIndex('upstream_lookups_expires').on('upstream_lookups').column('expires_at').execute();
  },
  async down(): Promise<void> {
    throw new Error('migrations are append-only');
  },
};
