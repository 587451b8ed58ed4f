// `loft serve --mode …` as real processes: check-config, migrate, workers sharing the GC lease,
// and graceful shutdown on SIGTERM.
import { test, type TestContext } from 'node:test';
import { once } from 'node:events';
import { get, type IncomingMessage } from 'node:http';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { openDatabase } from '../../../src/db/dialect.ts';
import { freshDatabase } from '../../helpers/databases.ts';
import { postgresUnavailable, skipUnless } from '../../helpers/env.ts';
import { deterministicBytes, makeNar, nix32Of, randomStorePath, uploadPathMeta } from '../../helpers/nar.ts';
import { loftEnv, runLoft, spawnLoft, startLoft, waitFor, type LoftProcess } from '../../helpers/processes.ts';
import { makeTempDir } from '../../helpers/tmp.ts';
import { MIGRATION_NAMES } from '../../../src/db/migrate.ts';

const secret = () => randomBytes(32).toString('base64');

test('--mode check-config accepts a good file and rejects a bad one with a one-line error', async (t) => {
  const tmp = await makeTempDir('loft-modes-');
  t.after(() => tmp.cleanup());
  const env = { PATH: process.env.PATH, HOME: process.env.HOME };
  const good = path.join(tmp.path, 'good.toml');
  await writeFile(good, `data_dir = "${tmp.path}"\nlisten = "127.0.0.1:9999"\n[database]\nurl = "postgresql://loft:pw@db/loft"\n[gc]\ninterval_seconds = 60\n`);
  const ok = await runLoft({ mode: 'check-config', env, config: good });
  assert.equal(ok.code, 0, ok.output);
  // The password is not printed.
  assert.equal(ok.output.trim(), 'config OK (database postgresql://loft:***@db/loft, storage local)');

  const cases: [string, RegExp][] = [
    ['[storage]\ntype = "ftp"\n', /^error: config: storage\.type must be "local" or "s3", not "ftp"$/],
    ['listen = "nowhere"\n', /^error: config: listen must be HOST:PORT, not "nowhere"$/],
    ['[gc]\ninterval_seconds = "hourly"\n', /^error: config: gc\.interval_seconds must be a non-negative number$/],
    ['[database\n', /^error: .+/],
  ];
  const results = await Promise.all(
    cases.map(async ([text], i) => {
      const bad = path.join(tmp.path, `bad-${i}.toml`);
      await writeFile(bad, text);
      return runLoft({ mode: 'check-config', env, config: bad });
    }),
  );
  for (const [i, [, expected]] of cases.entries()) {
    const r = results[i];
    assert.equal(r.code, 1, r.output);
    const lines = r.output.trim().split('\n');
    // A TOML syntax error may quote the line after the message; config errors are one line.
    if (i < 3) assert.equal(lines.length, 1, r.output);
    assert.match(lines[0], expected);
  }
  const missing = await runLoft({ mode: 'check-config', env, config: path.join(tmp.path, 'absent.toml') });
  assert.equal(missing.code, 1);
  assert.match(missing.output.trim(), /^error: ENOENT: no such file or directory, open '.*absent\.toml'$/);
});

test('--mode migrate migrates, exits 0 and is idempotent', async (t) => {
  if (!skipUnless(t, await postgresUnavailable())) return;
  const tmp = await makeTempDir('loft-modes-');
  const database = await freshDatabase('postgres', tmp.path);
  t.after(async () => {
    await database.drop();
    await tmp.cleanup();
  });
  const env = loftEnv({ databaseUrl: database.url, dataDir: tmp.path, adminToken: 'root', tokenSecret: secret() });
  const first = await runLoft({ mode: 'migrate', env });
  assert.equal(first.code, 0, first.output);
  assert.match(first.output, new RegExp(`^applied migrations: ${MIGRATION_NAMES.join(', ')}$`, 'm'));
  const second = await runLoft({ mode: 'migrate', env });
  assert.equal(second.code, 0, second.output);
  assert.match(second.output, /^database schema is up to date$/m);
  const db = openDatabase({ url: database.url });
  t.after(() => db.close());
  const tables = await db.kysely.introspection.getTables();
  for (const name of ['caches', 'objects', 'nars', 'chunks', 'leases']) assert.ok(tables.some((x) => x.name === name), name);
});

test('workers share the GC lease: one runs, the other takes over within the lease TTL when it dies', { timeout: 90_000 }, async (t) => {
  if (!skipUnless(t, await postgresUnavailable())) return;
  const tmp = await makeTempDir('loft-modes-');
  const database = await freshDatabase('postgres', tmp.path);
  const workers: LoftProcess[] = [];
  t.after(async () => {
    for (const w of workers) await w.kill('SIGKILL');
    await database.drop();
    await tmp.cleanup();
  });
  // interval 1 s: the lease lasts 3 intervals (src/server/jobs.ts).
  const config = path.join(tmp.path, 'loft.toml');
  await writeFile(config, '[gc]\ninterval_seconds = 1\n');
  const ttlMs = 3000;
  const env = loftEnv({ databaseUrl: database.url, dataDir: tmp.path, adminToken: 'root', tokenSecret: secret() });
  assert.equal((await runLoft({ mode: 'migrate', env })).code, 0);
  const GC = 'garbage collection done';

  const a = spawnLoft({ mode: 'worker', env, config });
  workers.push(a);
  await waitFor('the first worker to collect', () => a.logs(GC).length > 0 || (!a.running() && Promise.reject(new Error(a.output()))), 20_000);
  const b = spawnLoft({ mode: 'worker', env, config });
  workers.push(b);
  await waitFor('the second worker to start', () => b.logs('worker started: running background jobs only').length > 0, 20_000);

  // Both alive while the holder collects 3 more times (more than one lease TTL): only the holder collects.
  const before = a.logs(GC).length;
  await waitFor('the holder to collect 3 more times', () => a.logs(GC).length >= before + 3 || (!a.running() && Promise.reject(new Error(a.output()))), 60_000);
  assert.ok(a.running() && b.running(), a.output() + b.output());
  assert.equal(b.logs(GC).length, 0, `the second worker collected while the first held the lease:\n${b.output()}`);
  const db = openDatabase({ url: database.url });
  t.after(() => db.close());
  const lease = await db.kysely.selectFrom('leases').selectAll().where('name', '=', 'gc').executeTakeFirstOrThrow();
  assert.match(lease.holder, new RegExp(`-${a.child.pid}-`));

  await a.kill('SIGKILL');
  const killedAt = Date.now();
  const lastRenewal = Math.max(...a.logs(GC).map((r) => Number(r.time)));
  // The lease runs out TTL after the last renewal and the next tick (≤ 1 interval later) takes it; the
  // deadline leaves room for a loaded machine, the diagnostic shows the figure.
  await waitFor('the second worker to take over', () => b.logs(GC).length > 0, ttlMs + 30_000);
  const tookOver = Number(b.logs(GC)[0].time);
  t.diagnostic(`takeover ${tookOver - killedAt} ms after SIGKILL, ${tookOver - lastRenewal} ms after the last renewal (TTL ${ttlMs} ms)`);
  const now = await db.kysely.selectFrom('leases').selectAll().where('name', '=', 'gc').executeTakeFirstOrThrow();
  assert.match(now.holder, new RegExp(`-${b.child.pid}-`));

  // SIGTERM: the worker finishes its tick, releases the lease and exits 0.
  assert.deepEqual(await b.kill('SIGTERM'), { code: 0, signal: null });
  assert.equal(await db.kysely.selectFrom('leases').selectAll().where('name', '=', 'gc').executeTakeFirst(), undefined);
});

/** A server with a public cache `slow` holding a NAR of `mib` MiB; returns the NAR's decompressed URL. */
async function serverWithNar(t: TestContext, mib: number): Promise<{ server: LoftProcess; url: string; nar: Buffer }> {
  const tmp = await makeTempDir('loft-modes-');
  t.after(() => tmp.cleanup());
  const adminToken = `root-${randomBytes(8).toString('hex')}`;
  const env = loftEnv({ databaseUrl: `sqlite:${tmp.path}/loft.db`, dataDir: tmp.path, adminToken, tokenSecret: secret() });
  const server = await startLoft({ mode: 'api', env });
  t.after(() => server.kill('SIGKILL'));
  const auth = { authorization: `Bearer ${adminToken}` };
  const created = await fetch(`${server.url}/_api/v1/cache-config/slow`, {
    method: 'POST',
    headers: { ...auth, 'content-type': 'application/json' },
    body: JSON.stringify({ is_public: true }),
  });
  assert.equal(created.status, 201, await created.text());
  const nar = await makeNar({ data: deterministicBytes(`slow-${mib}`, mib * 1024 * 1024) });
  const sp = randomStorePath('slow');
  const pushed = await fetch(`${server.url}/_api/v1/upload-path`, {
    method: 'PUT',
    headers: { ...auth, 'content-type': 'application/octet-stream', 'x-loft-nar-info': JSON.stringify(uploadPathMeta('slow', sp.path, nar)) },
    body: nar,
  });
  assert.equal(pushed.status, 200, await pushed.text());
  return { server, url: `${server.url}/slow/nar/${nix32Of(nar)}.nar`, nar };
}

const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

test('SIGTERM during a slow download lets the response finish, then the process exits 0', { timeout: 90_000 }, async (t) => {
  // Larger than the loopback socket buffers, so the server is still writing when the signal arrives.
  const { server, url, nar } = await serverWithNar(t, 32);
  // No keep-alive: see the next test.
  const res = await new Promise<IncomingMessage>((resolve, reject) => get(url, { agent: false }, resolve).on('error', reject));
  assert.equal(res.statusCode, 200);
  res.pause();
  const parts: Buffer[] = [];
  const first = (await once(res, 'readable')) && (res.read() as Buffer);
  parts.push(first);
  server.child.kill('SIGTERM');
  // The reader stalls; the server must wait for it rather than cut the response.
  await sleep(1500);
  assert.ok(server.running(), `the server exited with a response in flight:\n${server.output()}`);
  for await (const part of res) parts.push(part as Buffer);
  const doneAt = Date.now();
  const body = Buffer.concat(parts);
  assert.equal(body.length, nar.length);
  assert.equal(sha256(body), sha256(nar));
  assert.deepEqual(await server.exited, { code: 0, signal: null });
  t.diagnostic(`exited ${Date.now() - doneAt} ms after the response completed`);
  assert.ok(Date.now() - doneAt < 5000);
  assert.equal(server.logs('shutting down: finishing requests in flight').length, 1, server.output());
});

test(
  'SIGTERM: a keep-alive connection that finishes its response does not hold the process open',
  { timeout: 60_000 },
  async (t) => {
    const { server, url, nar } = await serverWithNar(t, 16);
    const res = await fetch(url); // undici keeps the connection alive
    const reader = res.body!.getReader();
    const parts: Uint8Array[] = [(await reader.read()).value!];
    server.child.kill('SIGTERM');
    await sleep(500);
    for (let r = await reader.read(); !r.done; r = await reader.read()) parts.push(r.value);
    assert.equal(sha256(Buffer.concat(parts)), sha256(nar));
    const exited = await Promise.race([server.exited, sleep(5000).then(() => 'still running 5 s after its last response')]);
    assert.deepEqual(exited, { code: 0, signal: null });
  },
);
