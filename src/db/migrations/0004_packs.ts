import { sql, type Kysely } from 'kysely';
import type { DialectKind } from '../dialect.ts';

/**
 * Pack files: chunks live at an offset inside a pack object instead of one
 * object each. Existing one-blob-per-chunk data is converted in place, without
 * moving a byte: every old blob becomes a one-frame pack (offset 0), so both
 * layouts are read by the same code and compaction later merges them.
 * NAR listings (`.ls`) are stored once at ingest.
 */
export function packs(kind: DialectKind) {
  return {
    async up(db: Kysely<any>): Promise<void> {
      await db.schema
        .createTable('packs')
        .addColumn('id', kind === 'sqlite' ? 'integer' : 'bigserial', (c) =>
          kind === 'sqlite' ? c.primaryKey().autoIncrement() : c.primaryKey(),
        )
        .addColumn('storage_key', 'text', (c) => c.notNull().unique())
        .addColumn('size', 'bigint', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        // Set when compaction has moved the live chunks out: the object is deleted a grace period later.
        .addColumn('retired_at', 'bigint')
        .execute();
      await db.schema.alterTable('chunks').addColumn('pack_id', 'bigint', (c) => c.notNull().defaultTo(0)).execute();
      await db.schema.alterTable('chunks').addColumn('pack_offset', 'bigint', (c) => c.notNull().defaultTo(0)).execute();
      await sql`insert into packs (storage_key, size, created_at) select storage_key, stored_size, created_at from chunks`.execute(db);
      await sql`update chunks set pack_id = (select p.id from packs p where p.storage_key = chunks.storage_key)`.execute(db);
      await db.schema.dropIndex('chunks_storage_key').execute();
      await db.schema.alterTable('chunks').dropColumn('storage_key').execute();
      await db.schema.createIndex('chunks_pack').on('chunks').columns(['pack_id', 'pack_offset']).execute();

      await db.schema
        .createTable('nar_listings')
        .addColumn('nar_id', 'bigint', (c) => c.primaryKey().references('nars.id').onDelete('cascade'))
        .addColumn('listing', 'text', (c) => c.notNull())
        .execute();
    },
    async down(): Promise<void> {
      throw new Error('migrations are append-only');
    },
  };
}
