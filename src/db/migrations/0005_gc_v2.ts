import type { Kysely } from 'kysely';
import type { DialectKind } from '../dialect.ts';

const BACKFILL_BATCH = 1000;

// GC v2: references as rows (closure walks become recursive queries), pins, and a record of passes.
export function gcV2(kind: DialectKind) {
  const id = (t: Parameters<typeof withId>[0]) => withId(t, kind);
  return {
    async up(db: Kysely<any>): Promise<void> {
      await db.schema
        .createTable('object_refs')
        .addColumn('object_id', 'bigint', (c) => c.notNull().references('objects.id').onDelete('cascade'))
        .addColumn('cache_id', 'bigint', (c) => c.notNull())
        .addColumn('ref_hash', 'varchar(32)', (c) => c.notNull())
        .addPrimaryKeyConstraint('object_refs_pk', ['object_id', 'ref_hash'])
        .execute();
      await db.schema.createIndex('object_refs_referee').on('object_refs').columns(['cache_id', 'ref_hash']).execute();
      await db.schema.createIndex('objects_last_access').on('objects').columns(['cache_id', 'last_accessed_at']).execute();
      await backfillReferences(db);

      await id(db.schema.createTable('pins'))
        .addColumn('cache_id', 'bigint', (c) => c.notNull().references('caches.id').onDelete('cascade'))
        .addColumn('name', 'varchar(128)', (c) => c.notNull())
        .addColumn('keep_revisions', 'integer')
        .addColumn('keep_days', 'integer')
        .addColumn('created_by', 'text')
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addUniqueConstraint('pins_cache_name', ['cache_id', 'name'])
        .execute();
      await id(db.schema.createTable('pin_revisions'))
        .addColumn('pin_id', 'bigint', (c) => c.notNull().references('pins.id').onDelete('cascade'))
        .addColumn('cache_id', 'bigint', (c) => c.notNull())
        .addColumn('store_path_hash', 'varchar(32)', (c) => c.notNull())
        .addColumn('store_path', 'text', (c) => c.notNull())
        .addColumn('pinned_at', 'bigint', (c) => c.notNull())
        .execute();
      await db.schema.createIndex('pin_revisions_pin').on('pin_revisions').column('pin_id').execute();
      await db.schema.createIndex('pin_revisions_path').on('pin_revisions').columns(['cache_id', 'store_path_hash']).execute();

      await id(db.schema.createTable('gc_passes'))
        .addColumn('started_at', 'bigint', (c) => c.notNull())
        .addColumn('duration_ms', 'bigint', (c) => c.notNull())
        .addColumn('trigger', 'varchar(16)', (c) => c.notNull())
        .addColumn('scope', 'text', (c) => c.notNull())
        .addColumn('paths', 'bigint', (c) => c.notNull())
        .addColumn('nars', 'bigint', (c) => c.notNull())
        .addColumn('chunks', 'bigint', (c) => c.notNull())
        .addColumn('bytes_freed', 'bigint', (c) => c.notNull())
        .addColumn('report', 'text', (c) => c.notNull())
        .execute();
    },
    async down(): Promise<void> {
      throw new Error('migrations are append-only');
    },
  };
}

function withId(t: ReturnType<Kysely<any>['schema']['createTable']>, kind: DialectKind) {
  return kind === 'sqlite'
    ? t.addColumn('id', 'integer', (c) => c.primaryKey().autoIncrement())
    : t.addColumn('id', 'bigserial', (c) => c.primaryKey());
}

/** Existing rows' JSON references, copied into object_refs in id order, a batch at a time. */
async function backfillReferences(db: Kysely<any>): Promise<void> {
  for (let after = 0; ; ) {
    const rows: { id: number; cache_id: number; references: string }[] = await db
      .selectFrom('objects')
      .select(['id', 'cache_id', 'references'])
      .where('id', '>', after)
      .orderBy('id')
      .limit(BACKFILL_BATCH)
      .execute();
    if (rows.length === 0) return;
    const refs = rows.flatMap((r) =>
      [...new Set((JSON.parse(r.references) as string[]).map((ref) => ref.slice(0, 32)))].map((ref_hash) => ({
        object_id: r.id,
        cache_id: r.cache_id,
        ref_hash,
      })),
    );
    for (let i = 0; i < refs.length; i += BACKFILL_BATCH) {
      await db.insertInto('object_refs').values(refs.slice(i, i + BACKFILL_BATCH)).execute();
    }
    after = Number(rows[rows.length - 1].id);
  }
}
