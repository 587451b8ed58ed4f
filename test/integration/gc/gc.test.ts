// Garbage collection: retention never breaks a closure, unused NARs and chunks
// are freed bottom-up, and leases give background jobs to one replica at a time.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DB_KINDS, type DbKind } from '../../helpers/databases.ts';
import { postgresUnavailable, skipUnless } from '../../helpers/env.ts';
import { startTestServer, type TestServer } from '../../helpers/server.ts';
import { randomStorePath, sampleNar, uploadPathMeta } from '../../helpers/nar.ts';
import { tryAcquireLease } from '../../../src/db/repos/leases.ts';

async function push(server: TestServer, cache: string, name: string, references: string[] = []) {
  const sp = randomStorePath(name);
  const nar = await sampleNar(name, 300_000);
  const res = await server.fetch('/_api/v1/upload-path', {
    method: 'PUT',
    token: server.adminToken,
    headers: {
      'content-type': 'application/octet-stream',
      'x-loft-nar-info': JSON.stringify(uploadPathMeta(cache, sp.path, nar, { references })),
    },
    body: nar,
  });
  assert.equal(res.status, 200, await res.text());
  return sp;
}

async function count(server: TestServer, table: 'objects' | 'nars' | 'chunks' | 'nar_chunks'): Promise<number> {
  const r = await server.services.kysely
    .selectFrom(table)
    .select(({ fn }) => fn.countAll<number>().as('n'))
    .executeTakeFirstOrThrow();
  return Number(r.n);
}

async function age(server: TestServer, hashes: string[]) {
  await server.services.kysely
    .updateTable('objects')
    .set({ last_accessed_at: Date.now() - 10 * 86400_000 })
    .where('store_path_hash', 'in', hashes)
    .execute();
}

async function gc(server: TestServer) {
  const res = await server.fetch('/_api/v1/gc', { method: 'POST', token: server.adminToken });
  assert.equal(res.status, 200);
  return (await res.json()) as Record<string, number>;
}

async function withServer(t: import('node:test').TestContext, db: DbKind): Promise<TestServer | undefined> {
  if (db === 'postgres' && !skipUnless(t, await postgresUnavailable())) return undefined;
  const server = await startTestServer({ db, toml: { gc: { interval_seconds: 0, staging_grace_seconds: 0 } } });
  t.after(() => server.close());
  return server;
}

for (const db of DB_KINDS) {
  test(`retention expires unused paths but never breaks a closure, then frees NARs and chunks (${db})`, async (t) => {
    const server = await withServer(t, db);
    if (!server) return;
    await server.createCache('ret', { retention_period: 86400 });
    const a = await push(server, 'ret', 'a');
    const b = await push(server, 'ret', 'b', [a.baseName]);
    const c = await push(server, 'ret', 'c', [b.baseName, a.baseName]);
    const d = await push(server, 'ret', 'd');
    await age(server, [a.hash, b.hash, d.hash]);

    const first = await gc(server);
    assert.equal(first.expiredPaths, 1, 'only d: a and b are in the closure of the recently used c');
    for (const [p, status] of [[a, 200], [b, 200], [c, 200], [d, 404]] as const) {
      assert.equal((await server.fetch(`/ret/${p.hash}.narinfo`, { token: server.adminToken })).status, status, p.baseName);
    }
    assert.equal(await count(server, 'nars'), 3, "d's NAR is freed");

    await age(server, [c.hash]);
    const second = await gc(server);
    assert.equal(second.expiredPaths, 3);
    assert.equal(await count(server, 'objects'), 0);
    assert.equal(await count(server, 'nars'), 0);
    assert.equal(await count(server, 'chunks'), 0);
    let blobs = 0;
    for await (const _ of server.services.blobs.list('chunks/')) blobs++;
    assert.equal(blobs, 0, 'every chunk blob is deleted');
  });

  test(`paths pulled from an upstream have their own retention, still inside closures (${db})`, async (t) => {
    const server = await withServer(t, db);
    if (!server) return;
    await server.createCache('mix', { retention_period: 0, upstream_retention_period: 86400 });
    const a = await push(server, 'mix', 'pulled-a');
    const b = await push(server, 'mix', 'pulled-b');
    const c = await push(server, 'mix', 'own-c', [b.baseName]);
    const d = await push(server, 'mix', 'own-d');
    await server.services.kysely.updateTable('objects').set({ upstream: 'https://cache.example.org' }).where('store_path_hash', 'in', [a.hash, b.hash]).execute();
    await age(server, [a.hash, b.hash, c.hash, d.hash]);
    const report = await gc(server);
    assert.equal(report.expiredPaths, 1, 'only a: b is in the closure of c, and pushed paths are kept forever');
    for (const [p, status] of [[a, 404], [b, 200], [c, 200], [d, 200]] as const) {
      assert.equal((await server.fetch(`/mix/${p.hash}.narinfo`, { token: server.adminToken })).status, status, p.baseName);
    }
  });

  test(`a NAR shared by two caches survives the deletion of one copy (${db})`, async (t) => {
    const server = await withServer(t, db);
    if (!server) return;
    await server.createCache('one');
    await server.createCache('two');
    const sp = randomStorePath('shared');
    const nar = await sampleNar('shared', 200_000);
    for (const cache of ['one', 'two']) {
      const res = await server.fetch('/_api/v1/upload-path', {
        method: 'PUT',
        token: server.adminToken,
        headers: { 'x-loft-nar-info': JSON.stringify(uploadPathMeta(cache, sp.path, nar)), 'content-type': 'application/octet-stream' },
        body: nar,
      });
      assert.equal(res.status, 200);
    }
    const chunks = await count(server, 'chunks');
    const del = await server.fetch('/_api/v1/delete-paths', {
      method: 'POST',
      token: server.adminToken,
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ cache: 'one', store_path_hashes: [sp.hash] }),
    });
    assert.deepEqual(await del.json(), { deleted: 1 });
    await gc(server);
    assert.equal(await count(server, 'nars'), 1);
    assert.equal(await count(server, 'chunks'), chunks);
    const res = await server.fetch(`/two/${sp.hash}.narinfo`, { token: server.adminToken });
    assert.equal(res.status, 200);
  });

  test(`deleting a path that others in the cache refer to is refused unless forced (${db})`, async (t) => {
    const server = await withServer(t, db);
    if (!server) return;
    await server.createCache('del');
    const a = await push(server, 'del', 'a');
    const b = await push(server, 'del', 'b', [a.baseName]);
    const body = (force: boolean) =>
      JSON.stringify({ cache: 'del', store_path_hashes: [a.hash], ...(force ? { force } : {}) });
    const opts = { method: 'POST', token: server.adminToken, headers: { 'content-type': 'application/json' } };
    const refused = await server.fetch('/_api/v1/delete-paths', { ...opts, body: body(false) });
    assert.equal(refused.status, 400);
    assert.match(((await refused.json()) as { message: string }).message, new RegExp(`refusing to break closures.*${b.baseName}`));
    assert.equal((await server.fetch(`/del/${a.hash}.narinfo`, { token: server.adminToken })).status, 200);
    const forced = await server.fetch('/_api/v1/delete-paths', { ...opts, body: body(true) });
    assert.deepEqual(await forced.json(), { deleted: 1 });
    assert.equal((await server.fetch(`/del/${a.hash}.narinfo`, { token: server.adminToken })).status, 404);
    // Deleting the referrer together with the path is fine.
    await push(server, 'del', 'a2');
    const both = await server.fetch('/_api/v1/delete-paths', {
      ...opts,
      body: JSON.stringify({ cache: 'del', store_path_hashes: [b.hash] }),
    });
    assert.deepEqual(await both.json(), { deleted: 1 });
  });

  test(`a blob no chunk row names (left by a killed upload) is swept, blobs of live chunks stay (${db})`, async (t) => {
    const server = await withServer(t, db);
    if (!server) return;
    await server.createCache('orph');
    await push(server, 'orph', 'kept');
    const blobs = server.services.blobs;
    await blobs.put('chunks/00/00/0000-orphan.zst', Buffer.from('left behind'));
    const report = await gc(server);
    assert.equal(report.orphanBlobs, 1);
    assert.equal(await blobs.head('chunks/00/00/0000-orphan.zst'), null);
    let left = 0;
    for await (const _ of blobs.list('chunks/')) left++;
    assert.equal(left, await count(server, 'chunks'), 'blobs of live chunks stay');
  });

  test(`one lease holder at a time, and an expired lease changes hands (${db})`, async (t) => {
    const server = await withServer(t, db);
    if (!server) return;
    const k = server.services.kysely;
    const results = await Promise.all(['r1', 'r2', 'r3'].map((h) => tryAcquireLease(k, 'job', h, 60_000)));
    assert.equal(results.filter(Boolean).length, 1);
    const winner = ['r1', 'r2', 'r3'][results.indexOf(true)];
    assert.equal(await tryAcquireLease(k, 'job', winner, 60_000), true, 'the holder renews');
    assert.equal(await tryAcquireLease(k, 'job', 'other', 60_000), false);
    await k.updateTable('leases').set({ expires_at: Date.now() - 1 }).execute();
    assert.equal(await tryAcquireLease(k, 'job', 'other', 60_000), true, 'a dead holder hands over');
  });
}
