import type { Kysely } from 'kysely';
import type { DialectKind } from '../dialect.ts';

/**
 * A cache may hold several signing keys (rotation: old and new sign side by side), so keys get
 * their own table. Every cache's existing key becomes its first active key. caches.signing_key and
 * caches.public_key stay, mirroring the newest active key: replicas of the previous version keep
 * reading them during a rolling upgrade.
 */
export function cacheKeys(kind: DialectKind) {
  return {
    async up(db: Kysely<any>): Promise<void> {
      await db.schema
        .createTable('cache_keys')
        .addColumn('id', kind === 'sqlite' ? 'integer' : 'bigserial', (c) =>
          kind === 'sqlite' ? c.primaryKey().autoIncrement() : c.primaryKey(),
        )
        .addColumn('cache_id', 'bigint', (c) => c.notNull().references('caches.id').onDelete('cascade'))
        .addColumn('name', 'varchar(256)', (c) => c.notNull())
        .addColumn('secret_key', 'text', (c) => c.notNull())
        .addColumn('public_key', 'text', (c) => c.notNull())
        .addColumn('state', 'varchar(16)', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('retired_at', 'bigint')
        .addUniqueConstraint('cache_keys_cache_name', ['cache_id', 'name'])
        .execute();
      const caches = await db.selectFrom('caches').select(['id', 'signing_key', 'public_key', 'created_at']).execute();
      for (const c of caches) {
        await db
          .insertInto('cache_keys')
          .values({
            cache_id: c.id,
            name: String(c.public_key).slice(0, String(c.public_key).indexOf(':')),
            secret_key: c.signing_key,
            public_key: c.public_key,
            state: 'active',
            created_at: c.created_at,
            retired_at: null,
          })
          .execute();
      }
    },
    async down(): Promise<void> {
      throw new Error('migrations are append-only');
    },
  };
}
