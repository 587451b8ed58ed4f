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
import { nix32Of, randomStorePath, sampleNar, uploadPathMeta } from '../../helpers/nar.ts';
import { privatePostgresUnavailable, startPrivatePostgres } from '../../helpers/private-postgres.ts';
import { waitFor } from '../../helpers/processes.ts';
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
  const push = async () => {
    const nar = await sampleNar();
    const sp = randomStorePath('pg-restart');
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
  return { pg, services, base, timed, push };
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
