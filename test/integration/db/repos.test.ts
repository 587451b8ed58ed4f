// The repository functions of src/db/repos/*.ts on a real, freshly migrated
// SQLite and PostgreSQL database: uniqueness under concurrency, batching,
// visibility rules and cascades.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { DB_KINDS, freshDatabase, type DbKind } from '../../helpers/databases.ts';
import { postgresUnavailable, skipUnless } from '../../helpers/env.ts';
import { makeTempDir } from '../../helpers/tmp.ts';
import { randomStorePath } from '../../helpers/nar.ts';
import { insertTestCache } from '../../helpers/rows.ts';
import { openDatabase, type Db } from '../../../src/db/dialect.ts';
import { migrateToLatest } from '../../../src/db/migrate.ts';
import { deleteCache, findCacheByName, insertCache } from '../../../src/db/repos/caches.ts';
import { findChunksByHash, findVisibleChunks, insertChunks, stageChunks } from '../../../src/db/repos/chunks.ts';
import { findNarByHash, findNarChunks, insertNar, recordNarUpload, findNarUpload } from '../../../src/db/repos/nars.ts';
import { findMissingPaths, findObject, upsertObject } from '../../../src/db/repos/objects.ts';
import type { ChunkRow, NarRow, NewObject } from '../../../src/db/schema.ts';
import { sha256Nix32 } from '../../helpers/nar.ts';

/** A fresh, migrated database of `kind`, closed and dropped after the test. */
async function migrated(t: TestContext, kind: DbKind, poolSize = 12): Promise<{ db: Db; url: string } | undefined> {
  if (kind === 'postgres' && !skipUnless(t, await postgresUnavailable())) return undefined;
  const tmp = await makeTempDir('loft-repos-');
  const fresh = await freshDatabase(kind, tmp.path);
  const db = openDatabase({ url: fresh.url, poolSize });
  t.after(async () => {
    await db.close();
    await fresh.drop();
    await tmp.cleanup();
  });
  const applied = await migrateToLatest(db);
  assert.equal(applied[0], '0001_initial', `a fresh database gets every migration: ${applied.join(', ')}`);
  return { db, url: fresh.url };
}

let cacheSeq = 0;
async function newCache(db: Db, name = `repo-${++cacheSeq}`): Promise<number> {
  return (await insertTestCache(db.kysely, name)).id;
}

function chunkRow(seed: string) {
  const hash = createHash('sha256').update(seed).digest('hex');
  return {
    hash,
    size: 100,
    stored_size: 50,
    stored_hash: createHash('sha256').update(`stored ${seed}`).digest('hex'),
    pack_id: 0,
    pack_offset: 0,
    created_at: Date.now(),
  };
}

async function newChunks(db: Db, n: number): Promise<ChunkRow[]> {
  const out: ChunkRow[] = [];
  for (let i = 0; i < n; i++) out.push(...(await insertChunks(db.kysely, [chunkRow(randomBytes(8).toString('hex'))])).chunks);
  return out;
}

function narRow(seed = randomBytes(8).toString('hex'), chunkCount = 0): Omit<NarRow, 'id'> {
  return {
    nar_hash: sha256Nix32(Buffer.from(`nar ${seed}`)),
    nar_size: 1000,
    file_hash: sha256Nix32(Buffer.from(`file ${seed}`)),
    file_size: 500,
    chunk_count: chunkCount,
    created_at: Date.now(),
  };
}

function objectRow(cacheId: number, narId: number, over: Partial<NewObject> = {}): NewObject {
  const sp = randomStorePath();
  return {
    cache_id: cacheId,
    store_path_hash: sp.hash,
    store_path: sp.path,
    nar_id: narId,
    references: '[]',
    deriver: null,
    ca: null,
    client_sigs: '[]',
    server_sig: null,
    server_sig_key: null,
    created_by: 'test',
    created_at: 1000,
    last_accessed_at: 1000,
    ...over,
  };
}

const countRows = async (db: Db, table: 'objects' | 'nar_uploads' | 'chunk_stagings' | 'nars' | 'chunks' | 'nar_chunks' | 'caches') =>
  Number((await db.kysely.selectFrom(table).select(({ fn }) => fn.countAll<number>().as('n')).executeTakeFirstOrThrow()).n);

for (const kind of DB_KINDS) {
  test(`insertCache returns undefined for a duplicate name and keeps the first row (${kind})`, async (t) => {
    const m = await migrated(t, kind);
    if (!m) return;
    const id = await newCache(m.db, 'dup');
    const first = await findCacheByName(m.db.kysely, 'dup');
    assert.ok(first);
    const { id: _id, ...fields } = first;
    const again = await insertCache(m.db.kysely, { ...fields, priority: 99, public_key: 'other:key' });
    assert.equal(again, undefined);
    const row = await findCacheByName(m.db.kysely, 'dup');
    assert.equal(row?.id, id);
    assert.equal(row?.priority, 41);
    assert.equal(await countRows(m.db, 'caches'), 1);
  });

  test(`insertChunks of the same hash 10 times concurrently leaves one row and exactly one winner (${kind})`, async (t) => {
    const m = await migrated(t, kind);
    if (!m) return;
    const seed = randomBytes(8).toString('hex');
    // Each racer wrote its own copy into its own pack; the losers' copies are dead bytes for compaction.
    const results = await Promise.all(Array.from({ length: 10 }, () => insertChunks(m.db.kysely, [chunkRow(seed)])));
    assert.equal(results.filter((r) => r.lost.length === 0).length, 1, 'exactly one racer inserts');
    const winner = results.find((r) => r.lost.length === 0)!.chunks[0];
    for (const r of results) assert.deepEqual(r.chunks, [winner], 'every racer gets the stored row');
    assert.equal(await countRows(m.db, 'chunks'), 1);
    const found = await findChunksByHash(m.db.kysely, [winner.hash, 'f'.repeat(64)]);
    assert.deepEqual([...found.keys()], [winner.hash]);
  });

  test(`insertNar of the same hash concurrently leaves one nars row and one chunk list (${kind})`, async (t) => {
    const m = await migrated(t, kind);
    if (!m) return;
    const chunks = await newChunks(m.db, 5);
    const ids = [chunks[0].id, chunks[1].id, chunks[2].id, chunks[0].id, chunks[3].id, chunks[4].id]; // a chunk may repeat
    const nar = narRow('same', ids.length);
    const rows = await Promise.all(Array.from({ length: 10 }, () => insertNar(m.db.kysely, { ...nar, created_at: Date.now() }, ids)));
    const first = rows[0];
    for (const r of rows) assert.equal(r.id, first.id, 'every caller gets the same NAR');
    assert.equal(await countRows(m.db, 'nars'), 1);
    assert.equal(await countRows(m.db, 'nar_chunks'), ids.length, 'one chunk list, not one per caller');
    assert.deepEqual((await findNarChunks(m.db.kysely, first.id)).map((c) => c.id), ids, 'chunks in order');
    // Each later caller claims the row for its push (created_at set anew, for GC); the rest is the first's.
    const found = await findNarByHash(m.db.kysely, nar.nar_hash);
    assert.deepEqual({ ...found, created_at: 0 }, { ...first, created_at: 0 });
    assert.ok(found!.created_at >= first.created_at);
  });

  test(`findMissingPaths over 12 000 hashes (several batches) returns exactly the absent ones, in order (${kind})`, { timeout: 120_000 }, async (t) => {
    const m = await migrated(t, kind);
    if (!m) return;
    const cacheId = await newCache(m.db);
    const otherCache = await newCache(m.db);
    const nar = await insertNar(m.db.kysely, narRow(), []);
    const hashes = Array.from({ length: 12_000 }, () => randomStorePath().hash);
    const present = new Set<string>();
    const rows: NewObject[] = [];
    hashes.forEach((h, i) => {
      // Present at the start, middle and end of the batches, and every 7th elsewhere.
      if (i % 7 === 0 || i === 4999 || i === 5000 || i === 11_999) {
        present.add(h);
        rows.push(objectRow(cacheId, nar.id, { store_path_hash: h, store_path: `/nix/store/${h}-x` }));
      }
    });
    // Held by another cache only: still missing from this one.
    const elsewhere = hashes.filter((h) => !present.has(h)).slice(0, 50);
    for (const h of elsewhere) rows.push(objectRow(otherCache, nar.id, { store_path_hash: h, store_path: `/nix/store/${h}-x` }));
    for (let i = 0; i < rows.length; i += 500) await m.db.kysely.insertInto('objects').values(rows.slice(i, i + 500)).execute();
    const missing = await findMissingPaths(m.db.kysely, cacheId, hashes);
    assert.deepEqual(missing, hashes.filter((h) => !present.has(h)));
    assert.equal(missing.length, 12_000 - present.size);
    assert.deepEqual(await findMissingPaths(m.db.kysely, cacheId, []), []);
  });

  test(`findVisibleChunks shows only chunks of pullable caches' NARs and chunks staged for the pushing cache (${kind})`, async (t) => {
    const m = await migrated(t, kind);
    if (!m) return;
    const [a, b, c] = [await newCache(m.db), await newCache(m.db), await newCache(m.db)];
    const [inA, stagedB, orphan, inC, shared] = await newChunks(m.db, 5);
    const narA = await insertNar(m.db.kysely, narRow(undefined, 2), [inA.id, shared.id]);
    const narC = await insertNar(m.db.kysely, narRow(undefined, 2), [inC.id, shared.id]);
    await insertNar(m.db.kysely, narRow(undefined, 1), [orphan.id]); // a NAR no cache holds
    await upsertObject(m.db.kysely, objectRow(a, narA.id));
    await upsertObject(m.db.kysely, objectRow(c, narC.id));
    await stageChunks(m.db.kysely, b, [stagedB.id], Date.now());
    const all = [inA, stagedB, orphan, inC, shared].map((x) => x.hash);
    const visible = async (pullable: number[], staging: number) =>
      [...(await findVisibleChunks(m.db.kysely, all, pullable, staging)).keys()].sort();
    const sorted = (...xs: ChunkRow[]) => xs.map((x) => x.hash).sort();

    assert.deepEqual(await visible([a], b), sorted(inA, shared, stagedB));
    assert.deepEqual(await visible([a], a), sorted(inA, shared), "b's staging is not visible to a push to a");
    assert.deepEqual(await visible([], b), sorted(stagedB), 'no pullable cache: only own staging');
    assert.deepEqual(await visible([], a), []);
    assert.deepEqual(await visible([a, c], c), sorted(inA, inC, shared));
    assert.deepEqual(await visible([b], b), sorted(stagedB), 'staged chunks do not count as held by a cache');
    assert.ok(!(await visible([a, b, c], b)).includes(orphan.hash), 'a chunk of no object is never visible');
    // Re-staging refreshes rather than duplicates.
    await stageChunks(m.db.kysely, b, [stagedB.id], Date.now() + 1);
    assert.equal(await countRows(m.db, 'chunk_stagings'), 1);
  });

  test(`upsertObject replaces a path's metadata in place and keeps one row (${kind})`, async (t) => {
    const m = await migrated(t, kind);
    if (!m) return;
    const cacheId = await newCache(m.db);
    const [n1, n2] = [await insertNar(m.db.kysely, narRow(), []), await insertNar(m.db.kysely, narRow(), [])];
    const first = objectRow(cacheId, n1.id, { client_sigs: '["a:AAAA"]', server_sig: 'k:SIG', server_sig_key: 'k:PUB', created_at: 1000, last_accessed_at: 1000 });
    await upsertObject(m.db.kysely, first);
    const before = await findObject(m.db.kysely, cacheId, first.store_path_hash);
    assert.ok(before);
    const ref = randomStorePath('dep').baseName;
    await upsertObject(m.db.kysely, {
      ...first,
      nar_id: n2.id,
      references: JSON.stringify([ref]),
      deriver: 'x.drv',
      ca: 'fixed:r:sha256:abc',
      client_sigs: '["b:BBBB"]',
      server_sig: null,
      server_sig_key: null,
      created_by: 'someone-else',
      created_at: 5000,
      last_accessed_at: 5000,
    });
    const after = await findObject(m.db.kysely, cacheId, first.store_path_hash);
    assert.ok(after);
    assert.equal(after.id, before.id, 'updated in place');
    assert.equal(after.nar_id, n2.id);
    assert.equal(after.nar.nar_hash, n2.nar_hash);
    assert.deepEqual(JSON.parse(after.references), [ref]);
    assert.equal(after.deriver, 'x.drv');
    assert.equal(after.ca, 'fixed:r:sha256:abc');
    assert.equal(after.client_sigs, '["b:BBBB"]');
    assert.equal(after.server_sig, null, 'the old server signature is dropped: it signed other metadata');
    assert.equal(after.created_by, 'someone-else');
    assert.equal(after.last_accessed_at, 5000);
    assert.equal(after.created_at, 1000, 'creation time is the first push');
    assert.equal(await countRows(m.db, 'objects'), 1);
  });

  test(`deleteCache cascades to its objects, NAR uploads and chunk stagings but leaves global NARs and chunks (${kind})`, async (t) => {
    const m = await migrated(t, kind);
    if (!m) return;
    const [gone, kept] = [await newCache(m.db), await newCache(m.db)];
    const chunks = await newChunks(m.db, 3);
    const nar = await insertNar(m.db.kysely, narRow(undefined, 2), [chunks[0].id, chunks[1].id]);
    for (const cacheId of [gone, kept]) {
      await upsertObject(m.db.kysely, objectRow(cacheId, nar.id));
      await recordNarUpload(m.db.kysely, cacheId, 'x.nar.xz', nar.id, Date.now());
      await stageChunks(m.db.kysely, cacheId, [chunks[2].id], Date.now());
    }
    assert.equal(await deleteCache(m.db.kysely, gone), true);
    assert.equal(await deleteCache(m.db.kysely, gone), false, 'a second delete finds nothing');
    const k = m.db.kysely;
    assert.equal((await k.selectFrom('objects').select('id').where('cache_id', '=', gone).execute()).length, 0);
    assert.equal((await k.selectFrom('nar_uploads').select('nar_id').where('cache_id', '=', gone).execute()).length, 0);
    assert.equal((await k.selectFrom('chunk_stagings').select('chunk_id').where('cache_id', '=', gone).execute()).length, 0);
    assert.equal(await findNarUpload(k, gone, 'x.nar.xz'), undefined);
    // The other cache is untouched, and NARs/chunks are global.
    assert.equal(await countRows(m.db, 'objects'), 1);
    assert.equal(await countRows(m.db, 'nar_uploads'), 1);
    assert.equal(await countRows(m.db, 'chunk_stagings'), 1);
    assert.equal((await findNarUpload(k, kept, 'x.nar.xz'))?.id, nar.id);
    assert.equal(await countRows(m.db, 'nars'), 1);
    assert.equal(await countRows(m.db, 'chunks'), 3);
    assert.equal(await countRows(m.db, 'nar_chunks'), 2);
  });

  test(`migrateToLatest on an up-to-date database is a no-op (${kind})`, async (t) => {
    const m = await migrated(t, kind);
    if (!m) return;
    const cacheId = await newCache(m.db, 'survivor');
    assert.deepEqual(await migrateToLatest(m.db), []);
    assert.deepEqual(await migrateToLatest(m.db), []);
    assert.equal(await countRows(m.db, 'caches'), 1, 'data survives');
    assert.ok(cacheId > 0);
    // A second connection sees the same schema and migrates nothing either.
    const other = openDatabase({ url: m.url });
    try {
      assert.deepEqual(await migrateToLatest(other), []);
      assert.equal((await findCacheByName(other.kysely, 'survivor'))?.id, cacheId);
    } finally {
      await other.close();
    }
  });
}

test('concurrent migrateToLatest from three connections on PostgreSQL applies each migration exactly once', async (t) => {
  if (!skipUnless(t, await postgresUnavailable())) return;
  const tmp = await makeTempDir('loft-repos-');
  const fresh = await freshDatabase('postgres', tmp.path);
  const conns = [openDatabase({ url: fresh.url }), openDatabase({ url: fresh.url }), openDatabase({ url: fresh.url })];
  t.after(async () => {
    for (const c of conns) await c.close();
    await fresh.drop();
    await tmp.cleanup();
  });
  const results = await Promise.all(conns.map((c) => migrateToLatest(c)));
  const appliers = results.filter((r) => r.length > 0);
  assert.equal(appliers.length, 1, `exactly one connection applies the migrations: ${JSON.stringify(results)}`);
  assert.equal(appliers[0][0], '0001_initial');
  const recorded = await conns[0].kysely.selectFrom('kysely_migration' as never).selectAll().execute();
  assert.equal(recorded.length, appliers[0].length, 'each migration recorded once');
  // The schema works from every connection.
  for (const c of conns) assert.deepEqual(await findMissingPaths(c.kysely, 1, ['0'.repeat(32)]), ['0'.repeat(32)]);
});
