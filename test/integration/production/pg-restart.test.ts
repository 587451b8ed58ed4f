// A PostgreSQL outage: a private cluster is stopped under a running server, which must answer 503
// quickly (never 500, never hang), and recover by itself, without a restart, when it comes back.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { sql } from 'kysely';
import { buildApp } from '../../../src/server/app.ts';
import { resolveConfig } from '../../../src/server/config.ts';
import { createServices } from '../../../src/server/services.ts';
import { migrateToLatest } from '../../../src/db/migrate.ts';
import { skipUnless } from '../../helpers/env.ts';
import { deterministicBytes, makeNar, nix32Of, type Bytes, randomStorePath, sampleNar, uploadPathMeta } from '../../helpers/nar.ts';
import { privatePostgresUnavailable, startPrivatePostgres } from '../../helpers/private-postgres.ts';
import { waitFor } from '../../helpers/processes.ts';
import { listStorageObjects } from '../../helpers/storage-objects.ts';
import { makeTempDir } from '../../helpers/tmp.ts';

const STATEMENT_TIMEOUT_MS = 4000;
/**
 * How long an answer may take beyond the statement timeout: far below the 30 s after which the
 * test's own request gives up (a hang), generous for a loaded machine. The diagnostics show the figures.
 */
const ANSWER_DEADLINE_MS = 15_000;

/** A server (in this process, so the test can reach its kysely) on a private PostgreSQL cluster. */
async function serverOnPrivatePostgres(t: TestContext) {
  const pg = await startPrivatePostgres();
  const tmp = await makeTempDir('loft-pg-restart-');
  t.after(async () => {
    await pg.destroy();
    await tmp.cleanup();
  });
  const adminToken = `root-${randomBytes(8).toString('hex')}`;
  const config = resolveConfig(
    {
      data_dir: tmp.path,
      default_cache: '',
      database: { url: pg.url, pool_size: 4, statement_timeout_ms: STATEMENT_TIMEOUT_MS },
      auth: { admin_token: adminToken, hs256_secret: randomBytes(32).toString('base64') },
      compression: { threads: 1 },
      gc: { staging_grace_seconds: 0 },
    },
    {},
  );
  const services = await createServices(config);
  await migrateToLatest(services.db);
  const app = await buildApp(services, { logger: false });
  await app.listen({ host: '127.0.0.1', port: 0 });
  t.after(async () => {
    await app.close();
    await services.close();
  });
  const addr = app.server.address();
  const base = `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}`;
  const auth = { authorization: `Bearer ${adminToken}` };
  /** Status and milliseconds of a request. */
  const timed = async (p: string, init: RequestInit = {}) => {
    const started = Date.now();
    const res = await fetch(base + p, { ...init, signal: AbortSignal.timeout(30_000) });
    const text = await res.text();
    return { status: res.status, ms: Date.now() - started, text };
  };
  const push = async (given?: Bytes, sp = randomStorePath('pg-restart')) => {
    const nar = given ?? (await sampleNar());
    const res = await timed('/_api/v1/upload-path', {
      method: 'PUT',
      headers: { ...auth, 'content-type': 'application/octet-stream', 'x-loft-nar-info': JSON.stringify(uploadPathMeta('pgr', sp.path, nar)) },
      body: nar,
    });
    return { ...res, sp, nar };
  };

  const created = await timed('/_api/v1/cache-config/pgr', {
    method: 'POST',
    headers: { ...auth, 'content-type': 'application/json' },
    body: JSON.stringify({ is_public: true }),
  });
  assert.equal(created.status, 201, created.text);
  return { pg, services, config, base, timed, push };
}

test('a PostgreSQL restart: 503 while it is down, recovery without restarting the server', { timeout: 120_000 }, async (t) => {
  if (!skipUnless(t, await privatePostgresUnavailable())) return;
  const { pg, services, base, timed, push } = await serverOnPrivatePostgres(t);
  // The pool applies the configured statement_timeout to its sessions.
  const shown = await sql<{ statement_timeout: string }>`show statement_timeout`.execute(services.kysely);
  assert.equal(shown.rows[0].statement_timeout, `${STATEMENT_TIMEOUT_MS / 1000}s`);

  const before = await push();
  assert.equal(before.status, 200, before.text);
  assert.equal((await timed(`/pgr/${before.sp.hash}.narinfo`)).status, 200);
  assert.equal((await timed('/v1/healthz')).status, 200);

  await pg.stop();
  // Several rounds: the first meets pooled connections the shutdown terminated, later ones new connections refused.
  const seen: string[] = [];
  for (let round = 0; round < 3; round++) {
    // A narinfo looked up within the last 2 s may still come from the narinfo cache; never a 500.
    const recent = await timed(`/pgr/${before.sp.hash}.narinfo`);
    assert.ok([200, 503].includes(recent.status), `cached narinfo with the database down: ${recent.status} ${recent.text}`);
    for (const [what, res] of [
      ['healthz', await timed('/v1/healthz')],
      ['narinfo', await timed(`/pgr/${randomStorePath('never-seen').hash}.narinfo`)],
      ['push', await push()],
    ] as const) {
      assert.equal(res.status, 503, `${what} with the database down (round ${round}): ${res.status} ${res.text}`);
      assert.ok(res.ms < ANSWER_DEADLINE_MS, `${what} took ${res.ms} ms with the database down`);
      seen.push(`${what} ${res.ms} ms`);
    }
  }
  // Answered from the in-memory cache list when it can be; never a 500.
  const cacheInfo = await timed('/pgr/nix-cache-info');
  assert.ok([200, 503].includes(cacheInfo.status), `nix-cache-info: ${cacheInfo.status} ${cacheInfo.text}`);
  const health = JSON.parse((await timed('/v1/healthz')).text) as { database: string; storage: string };
  assert.match(health.database, /^error: /);
  assert.equal(health.storage, 'ok');
  t.diagnostic(`while down: ${seen.join(', ')}`);

  const restarted = Date.now();
  await pg.start();
  await waitFor('healthz 200 after the restart', async () => (await timed('/v1/healthz')).status === 200, 60_000, 100);
  t.diagnostic(`healthy ${Date.now() - restarted} ms after pg_ctl start began`);
  const after = await push();
  assert.equal(after.status, 200, after.text);
  for (const { sp, nar } of [before, after]) {
    const info = await timed(`/pgr/${sp.hash}.narinfo`);
    assert.equal(info.status, 200, info.text);
    assert.match(info.text, new RegExp(`^StorePath: ${sp.path}$`, 'm'));
    const res = await fetch(`${base}/pgr/nar/${nix32Of(nar)}.nar`);
    assert.equal(res.status, 200);
    assert.deepEqual(Buffer.from(await res.arrayBuffer()), nar);
  }
  assert.equal((await sql<{ statement_timeout: string }>`show statement_timeout`.execute(services.kysely)).rows[0].statement_timeout, '4s');
});

test('a PostgreSQL that stops answering: 503 within the statement timeout, never a hang', { timeout: 120_000 }, async (t) => {
  if (!skipUnless(t, await privatePostgresUnavailable())) return;
  const { pg, base, timed, push } = await serverOnPrivatePostgres(t);
  const before = await push();
  assert.equal(before.status, 200, before.text);

  await pg.freeze();
  const frozen = Date.now();
  // More requests than pooled connections, all at once.
  const results = await Promise.all([
    ...Array.from({ length: 6 }, () => timed(`/pgr/${before.sp.hash}.narinfo`)),
    timed('/v1/healthz'),
    push(),
  ]);
  t.diagnostic(`while frozen: ${results.map((r) => `${r.status} in ${r.ms} ms`).join(', ')}`);
  for (const r of results) {
    assert.equal(r.status, 503, r.text);
    assert.ok(r.ms < STATEMENT_TIMEOUT_MS + ANSWER_DEADLINE_MS, `answered after ${r.ms} ms`);
  }
  const again = await timed(`/pgr/${before.sp.hash}.narinfo`);
  assert.equal(again.status, 503, again.text);
  t.diagnostic(`a later request: ${again.status} in ${again.ms} ms (${Date.now() - frozen} ms frozen)`);

  await pg.thaw();
  const thawed = Date.now();
  await waitFor('healthz 200 after thawing', async () => (await timed('/v1/healthz')).status === 200, 60_000, 100);
  t.diagnostic(`healthy ${Date.now() - thawed} ms after thawing`);
  const after = await push();
  assert.equal(after.status, 200, after.text);
  assert.equal((await timed(`/pgr/${before.sp.hash}.narinfo`)).status, 200);
  const res = await fetch(`${base}/pgr/nar/${nix32Of(after.nar)}.nar`);
  assert.deepEqual(Buffer.from(await res.arrayBuffer()), after.nar);
});

test('a PostgreSQL restart with pushes and pulls in flight: each push is acknowledged and intact or refused and invisible, GC sweeps the rest', { timeout: 180_000 }, async (t) => {
  if (!skipUnless(t, await privatePostgresUnavailable())) return;
  const { pg, config, base, timed, push } = await serverOnPrivatePostgres(t);
  const served = await push(await makeNar({ data: deterministicBytes(`pg-inflight-${Date.now()}`, 2 * 1024 * 1024) }));
  assert.equal(served.status, 200, served.text);
  // Big enough to still be streaming when the database goes: 6 pushes of 4 MiB started 100 ms apart,
  // and downloads of a 2 MiB NAR in a loop from 4 clients.
  const nars = await Promise.all(Array.from({ length: 6 }, (_, i) => makeNar({ data: deterministicBytes(`pg-inflight-${i}-${Date.now()}`, 4 * 1024 * 1024) })));
  const pushes = nars.map((nar, i) => sleep(i * 100).then(() => push(nar)));
  let stopped = false;
  const pulled: string[] = [];
  const pulls = Array.from({ length: 4 }, async () => {
    while (!stopped) {
      try {
        const res = await fetch(`${base}/pgr/nar/${nix32Of(served.nar)}.nar`, { signal: AbortSignal.timeout(60_000) });
        const body = Buffer.from(await res.arrayBuffer());
        if (res.status === 200) assert.deepEqual(body, served.nar, 'a download completed with the wrong bytes');
        pulled.push(String(res.status));
      } catch (err) {
        if (err instanceof assert.AssertionError) throw err;
        pulled.push('cut');
      }
    }
  });
  // The database goes once the first push is through: the others are in flight or about to start.
  await Promise.race(pushes);
  await pg.stop();
  const results = await Promise.all(pushes);
  stopped = true;
  await Promise.all(pulls);
  await pg.start();
  await waitFor('healthz 200 after the restart', async () => (await timed('/v1/healthz')).status === 200, 60_000, 100);
  t.diagnostic(`pushes: ${results.map((r) => r.status).join(', ')}; downloads: ${pulled.length} (${[...new Set(pulled)].join(', ')})`);
  assert.ok(results.some((r) => r.status === 200) && results.some((r) => r.status !== 200), 'the restart fell among the pushes');
  for (const r of results) {
    const info = await timed(`/pgr/${r.sp.hash}.narinfo`);
    if (r.status === 200) {
      assert.equal(info.status, 200, `an acknowledged push is gone: ${info.text}`);
      const res = await fetch(`${base}/pgr/nar/${nix32Of(r.nar)}.nar`);
      assert.deepEqual(Buffer.from(await res.arrayBuffer()), r.nar);
    } else {
      assert.equal(r.status, 503, `a push cut by the restart: ${r.status} ${r.text}`);
      assert.match(JSON.parse(r.text).message, /database is unavailable/);
      assert.equal(info.status, 404, 'a refused push stays invisible');
      const again = await push(r.nar, r.sp);
      assert.equal(again.status, 200, again.text);
    }
  }
  // What the cut pushes left behind is swept: with the cache destroyed, two GC passes (grace 0) empty
  // storage — the first retires the packs it empties, the next deletes them.
  const auth = { authorization: `Bearer ${adminTokenOf(config)}` };
  assert.ok((await fetch(`${base}/_api/v1/cache-config/pgr`, { method: 'DELETE', headers: auth })).status < 300);
  for (let pass = 0; pass < 2; pass++) {
    const gc = await fetch(`${base}/_api/v1/gc`, { method: 'POST', headers: auth });
    assert.equal(gc.status, 200, await gc.text());
  }
  assert.deepEqual(await listStorageObjects(config.storage), []);
});

const adminTokenOf = (config: { auth: { adminToken?: string } }) => config.auth.adminToken!;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
