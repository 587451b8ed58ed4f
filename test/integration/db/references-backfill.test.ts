// Migration 0005 copies the JSON references of paths stored before it into object_refs, so GC
// walks the closures of old paths too: a database at migration 0003 with paths in it is migrated
// to the latest schema, on SQLite and PostgreSQL.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Migrator, type Migration } from 'kysely';
import { DB_KINDS, freshDatabase } from '../../helpers/databases.ts';
import { postgresUnavailable, skipUnless } from '../../helpers/env.ts';
import { makeTempDir } from '../../helpers/tmp.ts';
import { randomStorePath } from '../../helpers/nar.ts';
import { insertTestCache } from '../../helpers/rows.ts';
import { openDatabase } from '../../../src/db/dialect.ts';
import { migrateToLatest } from '../../../src/db/migrate.ts';
import { initialSchema } from '../../../src/db/migrations/0001_initial.ts';
import { leases } from '../../../src/db/migrations/0002_leases.ts';
import { chunkStorageKeyIndex } from '../../../src/db/migrations/0003_chunk_storage_key.ts';

for (const kind of DB_KINDS) {
  test(`migration 0005 backfills object_refs from the JSON references of existing paths (${kind})`, async (t) => {
    if (kind === 'postgres' && !skipUnless(t, await postgresUnavailable())) return;
    const tmp = await makeTempDir('loft-backfill-');
    const fresh = await freshDatabase(kind, tmp.path);
    const db = openDatabase({ url: fresh.url, poolSize: 2 });
    t.after(async () => {
      await db.close();
      await fresh.drop();
      await tmp.cleanup();
    });
    const before: Record<string, Migration> = {
      '0001_initial': initialSchema(db.kind),
      '0002_leases': leases,
      '0003_chunk_storage_key': chunkStorageKeyIndex,
    };
    const { error } = await new Migrator({ db: db.kysely, provider: { getMigrations: async () => before } }).migrateToLatest();
    assert.equal(error, undefined);

    const cache = await insertTestCache(db.kysely, 'old');
    const nar = await db.kysely
      .insertInto('nars')
      .values({ nar_hash: 'sha256:old', nar_size: 1, file_hash: 'sha256:old', file_size: 1, chunk_count: 0, created_at: 0 })
      .returning('id')
      .executeTakeFirstOrThrow();
    // More paths than one backfill batch, each referring to itself and its two predecessors.
    const paths = Array.from({ length: 1203 }, (_, i) => randomStorePath(`p${i}`));
    const refsOf = (i: number) => [paths[i], paths[i - 1], paths[i - 2]].filter(Boolean).map((p) => p.baseName).sort();
    for (let i = 0; i < paths.length; i += 400) {
      await db.kysely
        .insertInto('objects')
        .values(
          paths.slice(i, i + 400).map((p, k) => ({
            cache_id: cache.id,
            store_path_hash: p.hash,
            store_path: p.path,
            nar_id: Number(nar.id),
            references: JSON.stringify(refsOf(i + k)),
            deriver: null,
            ca: null,
            client_sigs: '[]',
            server_sig: null,
            server_sig_key: null,
            created_by: null,
            created_at: 0,
            last_accessed_at: 0,
          })),
        )
        .execute();
    }

    assert.ok((await migrateToLatest(db)).includes('0005_gc_v2'));
    const rows = await db.kysely
      .selectFrom('object_refs as r')
      .innerJoin('objects as o', 'o.id', 'r.object_id')
      .select(['o.store_path_hash', 'r.ref_hash', 'r.cache_id'])
      .execute();
    const got = new Map<string, string[]>();
    for (const r of rows) {
      assert.equal(Number(r.cache_id), cache.id);
      got.set(r.store_path_hash, [...(got.get(r.store_path_hash) ?? []), r.ref_hash]);
    }
    assert.equal(rows.length, 3 * paths.length - 3);
    paths.forEach((p, i) => {
      assert.deepEqual((got.get(p.hash) ?? []).sort(), refsOf(i).map((b) => b.slice(0, 32)).sort(), `references of path ${i}`);
    });
  });
}
