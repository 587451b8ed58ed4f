import type { Kysely } from 'kysely';

// Leader leases for background jobs: one replica at a time runs GC; a dead replica's lease expires.
export const leases = {
  async up(db: Kysely<any>): Promise<void> {
    await db.schema
      .createTable('leases')
      .addColumn('name', 'varchar(64)', (c) => c.primaryKey())
      .addColumn('holder', 'varchar(128)', (c) => c.notNull())
      .addColumn('expires_at', 'bigint', (c) => c.notNull())
      .execute();
    await db.schema.createIndex('chunks_created').on('chunks').column('created_at').execute();
    await db.schema.createIndex('nars_created').on('nars').column('created_at').execute();
  },
  async down(): Promise<void> {
    throw new Error('migrations are append-only');
  },
};
