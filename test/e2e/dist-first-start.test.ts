// The compiled build as `npm start` runs it (`node dist/src/bin/loft.js serve`, no configuration, in an
// empty directory): the first start creates the public `main` cache, `data/admin-token` and the token
// secret, a restart reuses them, and pushes (`nix copy` and the compiled `loft push`, whose chunk
// hashing and zstd run on worker threads loaded from dist/) come back through nix, verified.
// CI builds dist/ before `npm test`; locally, run `npm run build` first.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { nixUnavailable, skipUnless } from '../helpers/env.ts';
import { buildCorpus, closureOf, nix, nixEnv, writeNetrc } from '../helpers/nix.ts';
import { freePort, LOFT_DIST, spawnLoft, waitHealthy, type LoftProcess } from '../helpers/processes.ts';
import { makeTempDir } from '../helpers/tmp.ts';
import { freshStorePaths } from '../reliability/support.ts';

const exec = promisify(execFile);

test('npm start from scratch (compiled dist/): main cache, data/admin-token, token secret; push and pull through it', { timeout: 300_000 }, async (t) => {
  if (!skipUnless(t, nixUnavailable())) return;
  if (!skipUnless(t, existsSync(LOFT_DIST) ? undefined : `${LOFT_DIST} is not built (run npm run build)`)) return;
  const tmp = await makeTempDir('loft-first-start-');
  const procs: LoftProcess[] = [];
  t.after(async () => {
    for (const p of procs) await p.kill('SIGKILL');
    await tmp.cleanup();
  });
  // Nothing but PATH and HOME: no LOFT_* variable, no config file, the data directory not there yet.
  const env = { PATH: process.env.PATH, HOME: path.join(tmp.path, 'home') };
  const port = await freePort();
  const start = async () => {
    const p = spawnLoft({ mode: 'monolithic', env, port, dist: true, cwd: tmp.path });
    procs.push(p);
    await waitHealthy(p, 60_000);
    return p;
  };
  const data = path.join(tmp.path, 'data');
  assert.equal(existsSync(data), false);

  const first = await start();
  const tokenFile = path.join(data, 'admin-token');
  const secretFile = path.join(data, 'token-secret');
  for (const f of [tokenFile, secretFile]) assert.equal((await stat(f)).mode & 0o777, 0o600, `${f} must be private`);
  const adminToken = (await readFile(tokenFile, 'utf8')).trim();
  const secret = await readFile(secretFile, 'utf8');
  assert.ok(first.output().includes(adminToken), `the banner shows the new admin token:\n${first.output()}`);
  const auth = { authorization: `Bearer ${adminToken}` };

  // The `main` cache: public, so anonymous Nix clients can read it; the admin token administers it.
  const info = await fetch(`${first.url}/main/nix-cache-info`);
  assert.equal(info.status, 200);
  assert.match(await info.text(), /^StoreDir: \/nix\/store$/m);
  const cfg = await fetch(`${first.url}/_api/v1/cache-config/main`, { headers: auth });
  assert.equal(cfg.status, 200);
  const main = (await cfg.json()) as { is_public: boolean; public_key: string };
  assert.equal(main.is_public, true);
  assert.equal((await fetch(`${first.url}/_api/v1/cache-config/main`, { headers: { authorization: 'Bearer nonsense' } })).status, 401);

  // Pushes through the compiled server: nix copy, and the compiled CLI (chunking on its worker threads).
  const corpus = await buildCorpus(['all']);
  const closure = await closureOf([corpus.all]);
  const netrc = await writeNetrc(tmp.path, first.url, adminToken);
  await nix(['copy', '--to', `${first.url}/main?compression=zstd`, '--option', 'netrc-file', netrc, corpus.all], nixEnv(path.join(tmp.path, 'push')));
  const [own] = await freshStorePaths(tmp.path, 1, 3 * 1024 * 1024);
  const cli = await exec(process.execPath, [LOFT_DIST, 'push', 'main', own, '--json'], {
    env: { ...env, LOFT_SERVER: first.url, LOFT_TOKEN: adminToken },
  });
  assert.equal((JSON.parse(cli.stdout) as { pushed: number }).pushed, 1, cli.stdout);

  // A restart reuses the data directory: same admin token and secret, same cache key, no new cache.
  assert.deepEqual(await first.kill('SIGTERM'), { code: 0, signal: null });
  const second = await start();
  assert.equal((await readFile(tokenFile, 'utf8')).trim(), adminToken);
  assert.equal(await readFile(secretFile, 'utf8'), secret);
  assert.ok(!second.output().includes(adminToken), 'a restart does not print (or mint) a new admin token');
  const again = (await (await fetch(`${second.url}/_api/v1/cache-config/main`, { headers: auth })).json()) as { public_key: string };
  assert.equal(again.public_key, main.public_key);
  const { caches } = (await (await fetch(`${second.url}/_api/v1/caches`, { headers: auth })).json()) as { caches: { name: string }[] };
  assert.deepEqual(caches.map((c) => c.name), ['main']);

  // Pulled by nix into a fresh store, signatures required, verified.
  const store = path.join(tmp.path, 'store');
  const pullEnv = nixEnv(path.join(tmp.path, 'pull'));
  const roots = [corpus.all, own];
  await nix(
    ['--store', store, '-r', ...roots, '--option', 'substituters', `${second.url}/main`, '--option', 'trusted-public-keys', main.public_key, '--option', 'require-sigs', 'true'],
    pullEnv,
    'nix-store',
  );
  await nix(['store', 'verify', '--store', store, '--trusted-public-keys', main.public_key, '-r', ...roots], pullEnv);
  const pulled = (await nix(['--store', store, '-qR', ...roots], pullEnv, 'nix-store')).split('\n');
  assert.deepEqual(pulled.sort(), [...closure, own].sort());
});
