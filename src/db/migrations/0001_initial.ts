import { type CreateTableBuilder, type Kysely } from 'kysely';
import type { DialectKind } from '../dialect.ts';

// Append-only: never edit a migration that has shipped; add a new file instead.
export function initialSchema(kind: DialectKind) {
  const withId = <T extends string>(t: CreateTableBuilder<T, never>) =>
    kind === 'sqlite'
      ? t.addColumn('id', 'integer', (c) => c.primaryKey().autoIncrement())
      : t.addColumn('id', 'bigserial', (c) => c.primaryKey());

  return {
    async up(db: Kysely<any>): Promise<void> {
      await withId(db.schema.createTable('caches'))
        .addColumn('name', 'varchar(64)', (c) => c.notNull().unique())
        .addColumn('signing_key', 'text', (c) => c.notNull())
        .addColumn('public_key', 'text', (c) => c.notNull())
        .addColumn('is_public', 'integer', (c) => c.notNull())
        .addColumn('priority', 'integer', (c) => c.notNull())
        .addColumn('store_dir', 'text', (c) => c.notNull())
        .addColumn('upstream_key_names', 'text', (c) => c.notNull())
        .addColumn('retention_seconds', 'bigint')
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .execute();

      await withId(db.schema.createTable('nars'))
        .addColumn('nar_hash', 'varchar(64)', (c) => c.notNull().unique())
        .addColumn('nar_size', 'bigint', (c) => c.notNull())
        .addColumn('file_hash', 'varchar(64)', (c) => c.notNull())
        .addColumn('file_size', 'bigint', (c) => c.notNull())
        .addColumn('chunk_count', 'integer', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .execute();
      await db.schema.createIndex('nars_file_hash').on('nars').column('file_hash').execute();

      await withId(db.schema.createTable('chunks'))
        .addColumn('hash', 'varchar(64)', (c) => c.notNull().unique())
        .addColumn('size', 'integer', (c) => c.notNull())
        .addColumn('stored_size', 'integer', (c) => c.notNull())
        .addColumn('stored_hash', 'varchar(64)', (c) => c.notNull())
        .addColumn('storage_key', 'text', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .execute();

      await db.schema
        .createTable('nar_chunks')
        .addColumn('nar_id', 'bigint', (c) => c.notNull().references('nars.id').onDelete('cascade'))
        .addColumn('seq', 'integer', (c) => c.notNull())
        .addColumn('chunk_id', 'bigint', (c) => c.notNull().references('chunks.id'))
        .addPrimaryKeyConstraint('nar_chunks_pk', ['nar_id', 'seq'])
        .execute();
      await db.schema.createIndex('nar_chunks_chunk').on('nar_chunks').column('chunk_id').execute();

      await withId(db.schema.createTable('objects'))
        .addColumn('cache_id', 'bigint', (c) => c.notNull().references('caches.id').onDelete('cascade'))
        .addColumn('store_path_hash', 'varchar(32)', (c) => c.notNull())
        .addColumn('store_path', 'text', (c) => c.notNull())
        .addColumn('nar_id', 'bigint', (c) => c.notNull().references('nars.id'))
        .addColumn('references', 'text', (c) => c.notNull())
        .addColumn('deriver', 'text')
        .addColumn('ca', 'text')
        .addColumn('client_sigs', 'text', (c) => c.notNull())
        .addColumn('server_sig', 'text')
        .addColumn('server_sig_key', 'text')
        .addColumn('created_by', 'text')
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('last_accessed_at', 'bigint', (c) => c.notNull())
        .addUniqueConstraint('objects_cache_path', ['cache_id', 'store_path_hash'])
        .execute();
      await db.schema.createIndex('objects_nar').on('objects').column('nar_id').execute();

      await db.schema
        .createTable('nar_uploads')
        .addColumn('cache_id', 'bigint', (c) => c.notNull().references('caches.id').onDelete('cascade'))
        .addColumn('file_name', 'varchar(128)', (c) => c.notNull())
        .addColumn('nar_id', 'bigint', (c) => c.notNull().references('nars.id').onDelete('cascade'))
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addPrimaryKeyConstraint('nar_uploads_pk', ['cache_id', 'file_name'])
        .execute();

      await db.schema
        .createTable('chunk_stagings')
        .addColumn('cache_id', 'bigint', (c) => c.notNull().references('caches.id').onDelete('cascade'))
        .addColumn('chunk_id', 'bigint', (c) => c.notNull().references('chunks.id').onDelete('cascade'))
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addPrimaryKeyConstraint('chunk_stagings_pk', ['cache_id', 'chunk_id'])
        .execute();

      await db.schema
        .createTable('revoked_tokens')
        .addColumn('jti', 'varchar(128)', (c) => c.primaryKey())
        .addColumn('revoked_at', 'bigint', (c) => c.notNull())
        .addColumn('expires_at', 'bigint')
        .execute();

      await db.schema
        .createTable('issued_tokens')
        .addColumn('jti', 'varchar(128)', (c) => c.primaryKey())
        .addColumn('sub', 'text', (c) => c.notNull())
        .addColumn('claims', 'text', (c) => c.notNull())
        .addColumn('created_by', 'text')
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('expires_at', 'bigint', (c) => c.notNull())
        .execute();
    },
    async down(): Promise<void> {
      throw new Error('migrations are append-only');
    },
  };
}
