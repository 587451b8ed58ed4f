// `loft push` and `loft watch-store` as child processes against a real server,
// with the real Nix computing closures, dumping NARs and pulling the result back.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmod, cp, mkdir, open, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { nixUnavailable, skipUnless } from '../helpers/env.ts';
import { buildCorpus, closureOf, nix, nixEnv } from '../helpers/nix.ts';
import { startTestServer, type TestServer } from '../helpers/server.ts';
import { makeTempDir } from '../helpers/tmp.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

const LOFT = path.join(ROOT, 'src/bin/loft.ts');
const EMPTY_CONFIG = path.join(os.tmpdir(), 'loft-cli-push-no-config');

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
  ms: number;
}

interface LoftOptions {
  token: string;
  stdin?: string;
  /** Prepended to PATH (to put a failing nix-store first). */
  binDir?: string;
}

function spawnLoft(server: TestServer, args: string[], o: LoftOptions): ChildProcess {
  // Login by environment only: an empty config home, so no config file is read.
  const env: NodeJS.ProcessEnv = { ...nixEnv('/tmp'), XDG_CONFIG_HOME: EMPTY_CONFIG, LOFT_SERVER: server.url, LOFT_TOKEN: o.token };
  if (o.binDir) env.PATH = `${o.binDir}:${env.PATH}`;
  const child = spawn(process.execPath, ['--import', 'tsx', LOFT, ...args], {
    cwd: ROOT,
    env,
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  child.stdin!.end(o.stdin ?? '');
  return child;
}

async function loft(server: TestServer, args: string[], o: LoftOptions): Promise<Run> {
  const started = Date.now();
  const child = spawnLoft(server, args, o);
  return finished(child, started);
}

function finished(child: ChildProcess, started = Date.now()): Promise<Run> {
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (b: Buffer) => (stdout += b.toString()));
  child.stderr!.on('data', (b: Buffer) => (stderr += b.toString()));
  return new Promise((resolve) => child.on('close', (code) => resolve({ code, stdout, stderr, ms: Date.now() - started })));
}

interface Summary {
  cache: string;
  paths_total: number;
  pushed: number;
  skipped_present: number;
  skipped_upstream: number;
  failed: Array<{ path: string; error: string }>;
  bytes_sent: number;
  nar_bytes: number;
  bytes_deduplicated: number;
  seconds: number;
}

function summaryOf(run: Run): Summary {
  assert.equal(run.stdout.trim().split('\n').length, 1, `one JSON line on stdout:\n${run.stdout}`);
  return JSON.parse(run.stdout) as Summary;
}

function mib(n: number): string {
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

async function narSizes(paths: string[]): Promise<Map<string, number>> {
  const out = await nix(['path-info', '--json', ...paths], nixEnv('/tmp'));
  return new Map((JSON.parse(out) as Array<{ path: string; narSize: number }>).map((i) => [i.path, i.narSize]));
}

async function createToken(server: TestServer, caches: Record<string, string[]>): Promise<string> {
  const res = await server.fetch('/_api/v1/tokens', {
    method: 'POST',
    token: server.adminToken,
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ sub: 'cli-push-test', validity: '1h', caches }),
  });
  assert.equal(res.status, 201, await res.clone().text());
  return ((await res.json()) as { token: string }).token;
}

async function stagedChunks(server: TestServer, cache: string): Promise<number> {
  const k = server.services.kysely;
  const row = await k
    .selectFrom('chunk_stagings')
    .innerJoin('caches', 'caches.id', 'chunk_stagings.cache_id')
    .where('caches.name', '=', cache)
    .select(({ fn }) => fn.countAll<number>().as('n'))
    .executeTakeFirstOrThrow();
  return Number(row.n);
}

const hashOf = (storePath: string) => path.basename(storePath).slice(0, 32);

/**
 * The corpus default makes a ~70 MB `big` (its text half falls short of bigMiB / 2);
 * 150 gives a NAR over 100 MiB.
 */
const BIG_MIB = 150;

async function setup(t: TestContext) {
  const corpus = await buildCorpus(['all', 'big'], { bigMiB: BIG_MIB });
  const server = await startTestServer({ db: 'sqlite' });
  const tmp = await makeTempDir('loft-cli-push-');
  t.after(async () => {
    await server.close();
    await tmp.cleanup();
  });
  return { corpus, server, tmp };
}

test('loft push: closure, dedup on re-push, pull back with signatures, resume after a crash', { timeout: 600_000 }, async (t) => {
  if (!skipUnless(t, nixUnavailable())) return;
  const { corpus, server, tmp } = await setup(t);
  const key = await server.createCache('main');
  const closure = await closureOf([corpus.all, corpus.big]);
  const sizes = await narSizes(closure);
  const bigNar = sizes.get(corpus.big)!;
  assert.ok(bigNar >= 100 * 1024 * 1024, `big NAR is ${bigNar} bytes`);
  t.diagnostic(`big NAR: ${bigNar} bytes`);
  const admin = { token: server.adminToken };

  await t.test('a fresh push sends the closure, in dependency order, with plain progress lines', async () => {
    const run = await loft(server, ['push', 'main', corpus.all, corpus.big, '--json', '-j', '4'], admin);
    assert.equal(run.code, 0, run.stderr);
    const s = summaryOf(run);
    assert.equal(s.cache, 'main');
    assert.equal(s.paths_total, closure.length);
    assert.equal(s.pushed, closure.length);
    assert.equal(s.skipped_present + s.skipped_upstream, 0);
    assert.deepEqual(s.failed, []);
    assert.equal(s.nar_bytes, [...sizes.values()].reduce((a, b) => a + b, 0));
    assert.ok(s.bytes_sent > 0 && s.bytes_sent < s.nar_bytes, `bytes_sent ${s.bytes_sent} (zstd frames) < nar_bytes ${s.nar_bytes}`);
    assert.ok(s.bytes_deduplicated >= 0 && s.bytes_deduplicated < s.nar_bytes);
    assert.ok(!run.stderr.includes('\x1b'), 'no control characters in non-TTY progress');
    const lines = run.stderr.trim().split('\n');
    assert.match(lines[0], new RegExp(`^pushing ${closure.length} paths \\(.+\\) to main; 0 already present, 0 upstream$`));
    const pushedLines = lines.filter((l) => l.startsWith('pushed '));
    assert.equal(pushedLines.length, closure.length, run.stderr);
    // Each path's line comes after the lines of its references: no narinfo before its references.
    const order = pushedLines.map((l) => l.split(' ')[1]);
    const refs = JSON.parse(await nix(['path-info', '--json', ...closure], nixEnv('/tmp'))) as Array<{ path: string; references: string[] }>;
    for (const { path: p, references } of refs) {
      for (const r of references) if (r !== p) assert.ok(order.indexOf(r) < order.indexOf(p), `${r} before ${p}`);
    }
    t.diagnostic(
      `fresh push of ${closure.length} paths incl. the ${mib(bigNar)} big path: ${(run.ms / 1000).toFixed(1)} s wall ` +
        `(${s.seconds} s in push), ${mib(s.bytes_sent)} sent for ${mib(s.nar_bytes)} of NARs, ${mib(s.bytes_deduplicated)} deduplicated`,
    );
  });

  await t.test('nix pulls the closure back with signatures required, and it verifies', async () => {
    const store = path.join(tmp.path, 'store-pull');
    const env = nixEnv(path.join(tmp.path, 'pull'));
    const netrc = path.join(tmp.path, 'netrc');
    await writeFile(netrc, `machine 127.0.0.1\nlogin loft\npassword ${server.adminToken}\n`, { mode: 0o600 });
    await nix(
      ['--store', store, '-r', corpus.all, corpus.big, '--option', 'substituters', `${server.url}/main`,
        '--option', 'trusted-public-keys', key, '--option', 'require-sigs', 'true', '--option', 'netrc-file', netrc],
      env,
      'nix-store',
    );
    await nix(['store', 'verify', '--store', store, '--trusted-public-keys', key, '-r', corpus.all, corpus.big], env);
    const pulled = (await nix(['--store', store, '-qR', corpus.all, corpus.big], env, 'nix-store')).split('\n');
    assert.deepEqual(pulled.sort(), [...closure].sort());
  });

  await t.test('pushing again sends nothing', async () => {
    const run = await loft(server, ['push', 'main', corpus.all, corpus.big, '--json'], admin);
    assert.equal(run.code, 0, run.stderr);
    const s = summaryOf(run);
    assert.equal(s.pushed, 0);
    assert.equal(s.skipped_present, closure.length);
    assert.equal(s.bytes_sent, 0);
    assert.equal(s.nar_bytes, 0);
  });

  await t.test('a copy of the big path with a few bytes inserted costs a few chunks', async () => {
    const copy = path.join(tmp.path, 'c-big-edited');
    await cp(corpus.big, copy, { recursive: true });
    await chmod(copy, 0o755);
    await chmod(path.join(copy, 'random.bin'), 0o644);
    // Insert 16 bytes in the middle of random.bin (shifting the rest of the file).
    const file = await open(path.join(copy, 'random.bin'), 'r+');
    const { size } = await file.stat();
    const mid = Math.floor(size / 2);
    const tail = Buffer.alloc(size - mid);
    await file.read(tail, 0, tail.length, mid);
    await file.write(randomBytes(16), 0, 16, mid);
    await file.write(tail, 0, tail.length, mid + 16);
    await file.close();
    const edited = await nix(['--add', copy], nixEnv('/tmp'), 'nix-store');
    const run = await loft(server, ['push', 'main', edited, '--json'], admin);
    assert.equal(run.code, 0, run.stderr);
    const s = summaryOf(run);
    assert.equal(s.pushed, 1);
    assert.ok(s.bytes_sent < 2 * 1024 * 1024, `edited copy sent ${s.bytes_sent} bytes`);
    assert.ok(s.bytes_deduplicated > s.nar_bytes * 0.95, `${s.bytes_deduplicated} of ${s.nar_bytes} deduplicated`);
    t.diagnostic(
      `push of the big path edited (16 bytes inserted): ${(run.ms / 1000).toFixed(1)} s wall (${s.seconds} s in push), ` +
        `${(s.bytes_sent / 1024).toFixed(1)} KiB sent for ${mib(s.nar_bytes)} of NAR, ${mib(s.bytes_deduplicated)} deduplicated`,
    );
  });

  await t.test('a push killed mid-way resumes and sends less than a fresh one', async () => {
    // A token that sees only this cache: the chunks pushed to main are invisible to it, so this is a fresh push.
    await server.createCache('resume');
    const token = await createToken(server, { resume: ['push', 'pull'] });
    const fresh = await loft(server, ['push', 'fresh', corpus.big, '--json', '--no-closure'], { token: await createTokenFor('fresh') });
    assert.equal(fresh.code, 0, fresh.stderr);
    const freshSent = summaryOf(fresh).bytes_sent;

    const child = spawnLoft(server, ['push', 'resume', corpus.big, '--json', '--no-closure'], { token });
    const killed = finished(child);
    const deadline = Date.now() + 60_000;
    while ((await stagedChunks(server, 'resume')) < 200) {
      assert.ok(Date.now() < deadline, 'no chunks staged within 60 s');
      await sleep(50);
    }
    child.kill('SIGKILL');
    const k = await killed;
    assert.equal(k.code, null, 'killed, not finished');
    const staged = await stagedChunks(server, 'resume');

    const resumed = await loft(server, ['push', 'resume', corpus.big, '--json', '--no-closure'], { token });
    assert.equal(resumed.code, 0, resumed.stderr);
    const s = summaryOf(resumed);
    assert.equal(s.pushed, 1);
    assert.ok(s.bytes_sent < freshSent, `resumed push sent ${s.bytes_sent}, a fresh one ${freshSent}`);
    assert.ok(s.bytes_deduplicated > 0);
    const res = await server.fetch(`/resume/${hashOf(corpus.big)}.narinfo`, { token });
    assert.equal(res.status, 200);
    t.diagnostic(
      `fresh push of the big path alone: ${(fresh.ms / 1000).toFixed(1)} s wall, ${mib(freshSent)} sent; killed after ` +
        `${staged} chunks were staged; the resumed push sent ${mib(s.bytes_sent)} (${mib(s.bytes_deduplicated)} already there)`,
    );
  });

  /** A token for a new cache of its own (pull + push), so nothing pushed elsewhere is visible to it. */
  async function createTokenFor(cache: string): Promise<string> {
    await server.createCache(cache);
    return createToken(server, { [cache]: ['push', 'pull'] });
  }
});

test('loft push: failures, --stdin, and watch-store', { timeout: 300_000 }, async (t) => {
  if (!skipUnless(t, nixUnavailable())) return;
  const { corpus, server, tmp } = await setup(t);
  const admin = { token: server.adminToken };
  const leaf = (await closureOf([corpus.all])).find((p) => p.endsWith('-c-leaf'))!;

  await t.test('a path whose dump fails is reported on one line, with its dependents, and the exit code is non-zero', async () => {
    await server.createCache('fail');
    // A nix-store that refuses to dump c-leaf and is the real one otherwise.
    const bin = path.join(tmp.path, 'bin');
    await mkdir(bin);
    const real = (await nix(['-c', 'command -v nix-store'], process.env, 'sh')).trim();
    await writeFile(
      path.join(bin, 'nix-store'),
      `#!/bin/sh\nif [ "$1" = --dump ] && [ "$2" = "${leaf}" ]; then echo "error: simulated read failure" >&2; exit 3; fi\nexec ${real} "$@"\n`,
      { mode: 0o755 },
    );
    const run = await loft(server, ['push', 'fail', corpus.all, '--json'], { ...admin, binDir: bin });
    assert.notEqual(run.code, 0);
    const s = summaryOf(run);
    const leafFailure = s.failed.find((f) => f.path === leaf);
    assert.equal(leafFailure?.error, 'nix-store --dump exited with code 3: error: simulated read failure');
    assert.ok(run.stderr.includes(`failed ${leaf}: nix-store --dump exited with code 3: error: simulated read failure\n`), run.stderr);
    // c-chain-1 → 2 → 3 → c-all depend on the leaf: they are not pushed, so no narinfo precedes its references.
    assert.equal(s.failed.length, 5, JSON.stringify(s.failed));
    for (const f of s.failed.filter((f) => f.path !== leaf)) assert.match(f.error, /^not pushed: its reference .* failed$/);
    assert.equal(s.pushed + s.failed.length, s.paths_total);
    const res = await server.fetch(`/fail/${hashOf(corpus.all)}.narinfo`, { token: server.adminToken });
    assert.equal(res.status, 404);
  });

  await t.test('a cache the token cannot push to is one error line and exit 1', async () => {
    await server.createCache('readonly');
    const token = await createToken(server, { readonly: ['pull'] });
    const run = await loft(server, ['push', 'readonly', corpus.all], { token });
    assert.equal(run.code, 1);
    const lines = run.stderr.trim().split('\n');
    assert.equal(lines.length, 1, run.stderr);
    assert.match(lines[0], /^error: .*403/);
  });

  await t.test('--stdin takes the paths from stdin', async () => {
    await server.createCache('stdin');
    const roots = (await closureOf([corpus.all])).filter((p) => /-c-(tree|diamond-top)$/.test(p));
    const run = await loft(server, ['push', 'stdin', '--stdin', '--json'], { ...admin, stdin: `${roots.join('\n')}\n` });
    assert.equal(run.code, 0, run.stderr);
    const s = summaryOf(run);
    assert.equal(s.paths_total, (await closureOf(roots)).length);
    assert.equal(s.pushed, s.paths_total);
  });

  await t.test('watch-store pushes a freshly built path within 15 s and stops on SIGTERM', async () => {
    await server.createCache('watch');
    const child = spawnLoft(server, ['watch-store', 'watch', '--store-dir', '/nix/store'], admin);
    const done = finished(child);
    let stderr = '';
    child.stderr!.on('data', (b: Buffer) => (stderr += b.toString()));
    while (!stderr.includes('watching /nix/store')) {
      assert.equal(child.exitCode, null, stderr);
      await sleep(50);
    }
    const { leaf: fresh } = await buildCorpus(['leaf'], { salt: randomBytes(8).toString('hex') });
    const built = Date.now();
    let status = 0;
    while (Date.now() - built < 15_000) {
      status = (await server.fetch(`/watch/${hashOf(fresh)}.narinfo`, { token: server.adminToken })).status;
      if (status === 200) break;
      await sleep(200);
    }
    assert.equal(status, 200, `not in the cache 15 s after the build:\n${stderr}`);
    t.diagnostic(`watch-store: ${fresh} in the cache ${Date.now() - built} ms after nix-build returned`);
    child.kill('SIGTERM');
    const run = await done;
    assert.equal(run.code, 0, run.stderr);
    assert.ok(run.stderr.includes(`pushed ${fresh} `), run.stderr);
  });
});
