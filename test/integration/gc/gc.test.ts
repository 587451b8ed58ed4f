// Garbage collection through HTTP: retention never breaks a closure, unused NARs and chunks are
// freed bottom-up, leases give background jobs to one replica at a time; use (narinfo hits, NAR
// downloads, paths a push finds present) is tracked in batches; default, per-cache and "forever"
// retention; pins; cascade deletion; dry runs, gc_passes and metrics.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DB_KINDS, type DbKind } from '../../helpers/databases.ts';
import { postgresUnavailable, skipUnless } from '../../helpers/env.ts';
import { startTestServer, type TestServer } from '../../helpers/server.ts';
import { pushPath } from './support.ts';
import { randomStorePath, sampleNar, uploadPathMeta } from '../../helpers/nar.ts';
import { setTimeout as sleep } from 'node:timers/promises';
import { tryAcquireLease } from '../../../src/db/repos/leases.ts';
import { startJobs } from '../../../src/server/jobs.ts';
import type { DeletePathsResult, GcPassesResponse, GcReport, PinsResponse } from '../../../src/api/v1.ts';

const push = pushPath;

async function count(server: TestServer, table: 'objects' | 'nars' | 'chunks' | 'nar_chunks'): Promise<number> {
  const r = await server.services.kysely
    .selectFrom(table)
    .select(({ fn }) => fn.countAll<number>().as('n'))
    .executeTakeFirstOrThrow();
  return Number(r.n);
}

/** Makes the paths unused for 10 days (after writing the use recorded so far, which would undo it). */
async function age(server: TestServer, hashes: string[]) {
  await server.services.accessTracker.flush();
  await server.services.kysely
    .updateTable('objects')
    .set({ last_accessed_at: Date.now() - 10 * 86400_000 })
    .where('store_path_hash', 'in', hashes)
    .execute();
}

async function gc(server: TestServer, body?: { cache?: string; dry_run?: boolean }, token = server.adminToken) {
  const res = await api(server, 'POST', '/_api/v1/gc', body, token);
  assert.equal(res.status, 200, await res.clone().text());
  return (await res.json()) as GcReport;
}

function api(server: TestServer, method: string, path: string, body?: unknown, token = server.adminToken) {
  return server.fetch(path, {
    method,
    token,
    ...(body === undefined ? {} : { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }),
  });
}

async function mintToken(server: TestServer, caches: Record<string, string[]>): Promise<string> {
  const res = await api(server, 'POST', '/_api/v1/tokens', { sub: 'gc-test', validity: '1h', caches });
  assert.equal(res.status, 201, await res.clone().text());
  return ((await res.json()) as { token: string }).token;
}

async function lastAccess(server: TestServer, hash: string): Promise<number> {
  const r = await server.services.kysely.selectFrom('objects').select('last_accessed_at').where('store_path_hash', '=', hash).executeTakeFirstOrThrow();
  return r.last_accessed_at;
}

async function present(server: TestServer, cache: string, paths: { hash: string }[]): Promise<boolean[]> {
  const rows = await server.services.kysely
    .selectFrom('objects')
    .innerJoin('caches', 'caches.id', 'objects.cache_id')
    .select('store_path_hash')
    .where('caches.name', '=', cache)
    .execute();
  const here = new Set(rows.map((r) => r.store_path_hash));
  return paths.map((p) => here.has(p.hash));
}

async function withServer(
  t: import('node:test').TestContext,
  db: DbKind,
  gcSettings: Record<string, unknown> = {},
): Promise<TestServer | undefined> {
  if (db === 'postgres' && !skipUnless(t, await postgresUnavailable())) return undefined;
  const server = await startTestServer({ db, toml: { gc: { interval_seconds: 0, staging_grace_seconds: 0, ...gcSettings } } });
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
    assert.equal(first.paths, 1, 'only d: a and b are in the closure of the recently used c');
    for (const [p, status] of [[a, 200], [b, 200], [c, 200], [d, 404]] as const) {
      assert.equal((await server.fetch(`/ret/${p.hash}.narinfo`, { token: server.adminToken })).status, status, p.baseName);
    }
    assert.equal(await count(server, 'nars'), 3, "d's NAR is freed");

    // The narinfo reads above were use: a, b and c must all age again.
    await age(server, [a.hash, b.hash, c.hash]);
    const second = await gc(server);
    assert.equal(second.paths, 3);
    assert.equal(await count(server, 'objects'), 0);
    assert.equal(await count(server, 'nars'), 0);
    assert.equal(await count(server, 'chunks'), 0);
    assert.ok(second.packs_retired >= 1, 'packs left without live chunks are retired');
    // A retired pack is deleted a pass later: a download that looked its chunks up may still read it.
    const third = await gc(server);
    assert.equal(third.packs_deleted, second.packs_retired);
    let blobs = 0;
    for await (const _ of server.services.blobs.list('packs/')) blobs++;
    assert.equal(blobs, 0, 'every pack is deleted');
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
    assert.equal(report.paths, 1, 'only a: b is in the closure of c, and pushed paths are kept forever');
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
    assert.deepEqual(await del.json(), { deleted: 1, cascaded: [] });
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
    assert.deepEqual(await forced.json(), { deleted: 1, cascaded: [] });
    assert.equal((await server.fetch(`/del/${a.hash}.narinfo`, { token: server.adminToken })).status, 404);
    // Deleting the referrer together with the path is fine.
    await push(server, 'del', 'a2');
    const both = await server.fetch('/_api/v1/delete-paths', {
      ...opts,
      body: JSON.stringify({ cache: 'del', store_path_hashes: [b.hash] }),
    });
    assert.deepEqual(await both.json(), { deleted: 1, cascaded: [] });
  });

  test(`a pack no pack row names (left by a killed upload) is swept, packs of live chunks stay (${db})`, async (t) => {
    const server = await withServer(t, db);
    if (!server) return;
    await server.createCache('orph');
    await push(server, 'orph', 'kept');
    const blobs = server.services.blobs;
    await blobs.put('packs/00/orphan.pack', Buffer.from('left behind'));
    await blobs.put('chunks/00/00/0000-orphan.zst', Buffer.from('old layout, left behind'));
    const report = await gc(server);
    assert.equal(report.orphan_blobs, 2);
    assert.equal(await blobs.head('packs/00/orphan.pack'), null);
    assert.equal(await blobs.head('chunks/00/00/0000-orphan.zst'), null);
    let left = 0;
    for await (const _ of blobs.list('packs/')) left++;
    const packs = await server.services.kysely.selectFrom('packs').select('id').execute();
    assert.ok(packs.length > 0);
    assert.equal(left, packs.length, 'packs of live chunks stay');
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

  test(`a pass requested while another runs (on any replica) is a 409; a dry run is not held up (${db})`, async (t) => {
    const server = await withServer(t, db);
    if (!server) return;
    const k = server.services.kysely;
    assert.equal(await tryAcquireLease(k, 'gc-pass', 'a-pass-on-another-replica', 60_000), true);
    const busy = await api(server, 'POST', '/_api/v1/gc', {});
    assert.equal(busy.status, 409);
    assert.match(await busy.text(), /already running/);
    assert.equal((await gc(server, { dry_run: true })).dry_run, true);
    await k.deleteFrom('leases').where('name', '=', 'gc-pass').execute();
    await gc(server);
    await gc(server); // the pass let go of the lease when it ended
    assert.equal(await k.selectFrom('leases').select('holder').where('name', '=', 'gc-pass').executeTakeFirst(), undefined);
  });

  test(`narinfo hits and NAR downloads count as use, written in batches (${db})`, async (t) => {
    const server = await withServer(t, db, { access_flush_seconds: 3600 });
    if (!server) return;
    await server.createCache('use', { retention_period: 86400 });
    const [read, fetched, asked, idle] = [
      await push(server, 'use', 'read'),
      await push(server, 'use', 'fetched'),
      await push(server, 'use', 'asked'),
      await push(server, 'use', 'idle'),
    ];
    const narinfo = await (await server.fetch(`/use/${fetched.hash}.narinfo`, { token: server.adminToken })).text();
    // Aged after that read: the NAR download below must be what keeps `fetched`.
    await age(server, [read.hash, fetched.hash, asked.hash, idle.hash]);
    const aged = await lastAccess(server, read.hash);
    // A push that finds a path present will refer to it: that is use too.
    const missing = await api(server, 'POST', '/_api/v1/get-missing-paths', { cache: 'use', store_path_hashes: [asked.hash] });
    assert.deepEqual(await missing.json(), { missing_paths: [] });
    for (let i = 0; i < 20; i++) {
      assert.equal((await server.fetch(`/use/${read.hash}.narinfo`, { token: server.adminToken })).status, 200);
    }
    const url = /^URL: (.*)$/m.exec(narinfo)![1];
    const nar = await server.fetch(`/use/${url}`, { token: server.adminToken });
    assert.equal(nar.status, 200);
    await nar.arrayBuffer();
    assert.equal(await lastAccess(server, read.hash), aged, 'twenty reads, no write yet: use is recorded in memory');
    assert.equal(await lastAccess(server, fetched.hash), aged);

    const report = await gc(server);
    assert.deepEqual(report.caches.find((c) => c.cache === 'use')?.store_paths, [idle.path], 'the pass writes recorded use first');
    assert.ok((await lastAccess(server, read.hash)) > Date.now() - 60_000);
    assert.ok((await lastAccess(server, fetched.hash)) > Date.now() - 60_000);
    assert.ok((await lastAccess(server, asked.hash)) > Date.now() - 60_000);
  });

  test(`recorded use reaches the database within the flush interval (${db})`, async (t) => {
    const server = await withServer(t, db, { access_flush_seconds: 0.2 });
    if (!server) return;
    await server.createCache('flush');
    const p = await push(server, 'flush', 'p');
    await age(server, [p.hash]);
    const aged = await lastAccess(server, p.hash);
    assert.equal((await server.fetch(`/flush/${p.hash}.narinfo`, { token: server.adminToken })).status, 200);
    const deadline = Date.now() + 30_000;
    while ((await lastAccess(server, p.hash)) === aged) {
      assert.ok(Date.now() < deadline, 'the use was never written');
      await sleep(50);
    }
  });

  test(`the server default retention, a cache's own, and "forever" (${db})`, async (t) => {
    const server = await withServer(t, db, { default_retention_seconds: 7 * 86400 });
    if (!server) return;
    await server.createCache('dflt');
    await server.createCache('short', { retention_period: 86400 });
    await server.createCache('forever', { retention_period: 0 });
    const paths: Record<string, { recent: { hash: string }; old: { hash: string } }> = {};
    for (const cache of ['dflt', 'short', 'forever']) {
      paths[cache] = { recent: await push(server, cache, 'recent'), old: await push(server, cache, 'old') };
    }
    await server.services.accessTracker.flush();
    const set = (hashes: string[], days: number) =>
      server.services.kysely.updateTable('objects').set({ last_accessed_at: Date.now() - days * 86400_000 }).where('store_path_hash', 'in', hashes).execute();
    await set(Object.values(paths).map((p) => p.recent.hash), 3);
    await set(Object.values(paths).map((p) => p.old.hash), 10);
    const report = await gc(server);
    assert.equal(report.paths, 3);
    assert.deepEqual(await present(server, 'dflt', [paths.dflt.recent, paths.dflt.old]), [true, false], 'default: 7 days');
    assert.deepEqual(await present(server, 'short', [paths.short.recent, paths.short.old]), [false, false], 'its own: 1 day');
    assert.deepEqual(await present(server, 'forever', [paths.forever.recent, paths.forever.old]), [true, true], 'forever');
  });

  test(`a pin keeps its closure; re-pinning keeps the last N targets; pinned paths cannot be deleted (${db})`, async (t) => {
    const server = await withServer(t, db);
    if (!server) return;
    await server.createCache('pins', { retention_period: 86400 });
    const lib = await push(server, 'pins', 'lib');
    const v1 = await push(server, 'pins', 'app-1', [lib.baseName]);
    const v2 = await push(server, 'pins', 'app-2');
    const v3 = await push(server, 'pins', 'app-3');
    const loose = await push(server, 'pins', 'loose');

    const puller = await mintToken(server, { pins: ['pull'] });
    const pinner = await mintToken(server, { pins: ['pull', 'pin'] });
    assert.equal((await api(server, 'PUT', '/_api/v1/caches/pins/pins/release', { store_path: v1.path }, puller)).status, 403);
    const missing = await api(server, 'PUT', '/_api/v1/caches/pins/pins/release', { store_path: randomStorePath('nowhere').path }, pinner);
    assert.equal(missing.status, 404, 'only a path of the cache can be pinned');
    for (const v of [v1, v2, v3]) {
      const res = await api(server, 'PUT', '/_api/v1/caches/pins/pins/release', { store_path: v.path, keep_revisions: 2 }, pinner);
      assert.equal(res.status, 200, await res.clone().text());
    }
    const listed = (await (await api(server, 'GET', '/_api/v1/caches/pins/pins', undefined, puller)).json()) as PinsResponse;
    assert.deepEqual(
      listed.pins.map((p) => [p.name, p.store_path, p.revisions.map((r) => r.store_path)]),
      [['release', v3.path, [v3.path, v2.path]]],
      'v1 is no longer among the last 2 targets',
    );

    await age(server, [lib.hash, v1.hash, v2.hash, v3.hash, loose.hash]);
    const first = await gc(server);
    assert.deepEqual([...first.caches[0].store_paths].sort(), [lib.path, v1.path, loose.path].sort());
    assert.deepEqual(await present(server, 'pins', [v2, v3]), [true, true]);

    // A pin's closure is kept at any depth.
    const base = await push(server, 'pins', 'base');
    const mid = await push(server, 'pins', 'mid', [base.baseName]);
    const top = await push(server, 'pins', 'top', [mid.baseName]);
    assert.equal((await api(server, 'PUT', '/_api/v1/caches/pins/pins/deep', { store_path: top.hash }, pinner)).status, 200);
    await age(server, [base.hash, mid.hash, top.hash]);
    assert.equal((await gc(server)).paths, 0);

    const del = await api(server, 'POST', '/_api/v1/delete-paths', { cache: 'pins', store_path_hashes: [v2.hash] });
    assert.equal(del.status, 409);
    assert.match(((await del.json()) as { message: string }).message, /pinned.*release/);
    const cascade = await api(server, 'POST', '/_api/v1/delete-paths', { cache: 'pins', store_path_hashes: [base.hash], cascade: true });
    assert.equal(cascade.status, 409, 'a cascade reaching a pinned path is refused too');

    assert.equal((await api(server, 'DELETE', '/_api/v1/caches/pins/pins/release', undefined, pinner)).status, 204);
    assert.equal((await api(server, 'DELETE', '/_api/v1/caches/pins/pins/release', undefined, pinner)).status, 404);
    const after = await gc(server);
    assert.deepEqual([...after.caches[0].store_paths].sort(), [v2.path, v3.path].sort(), 'unpinned paths go once expired');
  });

  test(`deleting with cascade takes every referrer at any depth and lists them (${db})`, async (t) => {
    const server = await withServer(t, db);
    if (!server) return;
    await server.createCache('casc');
    const a = await push(server, 'casc', 'a');
    const b = await push(server, 'casc', 'b', [a.baseName]);
    const c = await push(server, 'casc', 'c', [b.baseName]);
    const other = await push(server, 'casc', 'other');
    const refused = await api(server, 'POST', '/_api/v1/delete-paths', { cache: 'casc', store_path_hashes: [a.hash] });
    assert.equal(refused.status, 400);
    assert.match(((await refused.json()) as { message: string }).message, new RegExp(`still referenced by ${b.path}.*cascade`));
    const res = await api(server, 'POST', '/_api/v1/delete-paths', { cache: 'casc', store_path_hashes: [a.hash], cascade: true });
    assert.equal(res.status, 200);
    const body = (await res.json()) as DeletePathsResult;
    assert.equal(body.deleted, 3);
    assert.deepEqual([...body.cascaded].sort(), [b.path, c.path].sort());
    assert.deepEqual(await present(server, 'casc', [a, b, c, other]), [false, false, false, true]);
  });

  test(`dry runs change nothing; passes are logged in gc_passes and the metrics; per-cache passes need delete (${db})`, async (t) => {
    const server = await withServer(t, db);
    if (!server) return;
    await server.createCache('vis', { retention_period: 86400 });
    await server.createCache('elsewhere', { retention_period: 86400 });
    const old = await push(server, 'vis', 'old-vis');
    const elsewhere = await push(server, 'elsewhere', 'old-elsewhere');
    await age(server, [old.hash, elsewhere.hash]);

    const dry = await gc(server, { cache: 'vis', dry_run: true });
    assert.equal(dry.dry_run, true);
    assert.deepEqual(dry.caches, [{ cache: 'vis', paths: 1, store_paths: [old.path], nar_bytes: dry.nar_bytes }]);
    assert.ok(dry.nar_bytes > 0);
    assert.deepEqual(await present(server, 'vis', [old]), [true]);
    assert.equal(await count(server, 'nars'), 2);

    const deleter = await mintToken(server, { vis: ['delete'] });
    assert.equal((await api(server, 'POST', '/_api/v1/gc', {}, deleter)).status, 403, 'every cache: admin only');
    assert.equal((await api(server, 'POST', '/_api/v1/gc', { cache: 'elsewhere' }, deleter)).status, 403);
    const real = await gc(server, { cache: 'vis' }, deleter);
    assert.equal(real.paths, 1);
    assert.equal(real.nars, 1);
    assert.ok(real.chunks > 0 && real.bytes_freed > 0, 'chunks and their bytes are freed');
    assert.deepEqual(await present(server, 'elsewhere', [elsewhere]), [true], 'other caches are left alone');

    const passes = (await (await api(server, 'GET', '/_api/v1/gc/passes')).json()) as GcPassesResponse;
    assert.equal(passes.passes.length, 1, 'the dry run is not recorded');
    assert.deepEqual(
      { ...passes.passes[0], id: 0, started_at: '', duration_ms: 0 },
      { id: 0, started_at: '', duration_ms: 0, trigger: 'api', scope: 'vis', paths: 1, nars: 1, chunks: real.chunks, bytes_freed: real.bytes_freed },
    );
    assert.equal((await api(server, 'GET', '/_api/v1/gc/passes', undefined, deleter)).status, 403);
    const metrics = await (await server.fetch('/metrics')).text();
    assert.match(metrics, /loft_gc_passes_total\{trigger="api",result="ok"\} 1/);
    assert.match(metrics, new RegExp(`loft_gc_freed_bytes_total ${real.bytes_freed}`));
    assert.match(metrics, /loft_gc_deleted_total\{kind="paths"\} 1/);
    assert.match(metrics, /loft_gc_pass_duration_seconds_count 1/);
  });

  test(`the timer's passes are recorded too (${db})`, async (t) => {
    const server = await withServer(t, db, { interval_seconds: 0.2 });
    if (!server) return;
    const jobs = startJobs(server.services, server.app.log);
    t.after(() => jobs.stop());
    const deadline = Date.now() + 30_000;
    for (;;) {
      const { passes } = (await (await api(server, 'GET', '/_api/v1/gc/passes')).json()) as GcPassesResponse;
      if (passes.some((p) => p.trigger === 'timer' && p.scope === '*')) break;
      assert.ok(Date.now() < deadline, 'no timer pass recorded');
      await sleep(100);
    }
  });
}
