// The `loft` client commands as a child process against a real server, with a private
// XDG_CONFIG_HOME: login (and its config file), LOFT_SERVER/LOFT_TOKEN without any config,
// cache create/configure/info/list/destroy, path info/delete, errors, completions, --version.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'smol-toml';
import { startTestServer, type TestServer } from '../../helpers/server.ts';
import { makeTempDir } from '../../helpers/tmp.ts';
import { randomStorePath, sampleNar, uploadPathMeta } from '../../helpers/nar.ts';
import { type CliRun as Run, runCli as loft, LOFT_BIN } from '../../helpers/cli.ts';
import { commandUnavailable, skipUnless } from '../../helpers/env.ts';

const PKG = fileURLToPath(new URL('../../../package.json', import.meta.url));



const ok = (r: Run) => assert.equal(r.code, 0, `exit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
const oneLine = (r: Run, re: RegExp) => {
  assert.equal(r.code, 1, r.stderr);
  const lines = r.stderr.trimEnd().split('\n');
  assert.equal(lines.length, 1, `expected one line, got:\n${r.stderr}`);
  assert.match(lines[0], /^error: /);
  assert.match(lines[0], re);
};

async function uploadPath(server: TestServer, cache: string, references: string[] = []) {
  const sp = randomStorePath('cli-test');
  const nar = await sampleNar();
  const meta = uploadPathMeta(cache, sp.path, nar, { references, sigs: [] });
  const res = await server.fetch('/_api/v1/upload-path', {
    method: 'PUT',
    token: server.adminToken,
    headers: { 'x-loft-nar-info': JSON.stringify(meta) },
    body: new Uint8Array(nar),
  });
  assert.equal(res.status, 200, await res.text());
  return { ...sp, nar };
}

test('loft client commands', { timeout: 240_000 }, async (t) => {
  const server = await startTestServer({ db: 'sqlite' });
  const tmp = await makeTempDir('loft-cli-');
  t.after(async () => {
    await server.close();
    await tmp.cleanup();
  });
  const home = path.join(tmp.path, 'home');
  const xdg = path.join(tmp.path, 'xdg');
  const env = { HOME: home, XDG_CONFIG_HOME: xdg };
  const configFile = path.join(xdg, 'loft', 'config.toml');

  await t.test('--version prints the version of package.json', async () => {
    const r = await loft(['--version'], env);
    ok(r);
    assert.equal(r.stdout.trim(), (JSON.parse(await readFile(PKG, 'utf8')) as { version: string }).version);
  });

  await t.test('login with a bad token fails with one line and writes nothing', async () => {
    const r = await loft(['login', 'main', server.url, 'not-a-token'], env);
    oneLine(r, /refused the token.*nothing was saved/);
    assert.equal(existsSync(configFile), false);
    const bad = await loft(['login', 'main', 'ftp://example.com', 'x'], env);
    oneLine(bad, /must be an http/);
  });

  await t.test('login writes the config (0600 in a 0700 dir); the first server is the default', async () => {
    await server.createCache('visible', { is_public: true });
    const r = await loft(['login', 'main', `${server.url}/`, server.adminToken], env);
    ok(r);
    assert.match(r.stdout, /logged in to 'main'.*default server/);
    assert.match(r.stdout, /visible/);
    assert.equal((await stat(configFile)).mode & 0o777, 0o600);
    assert.equal((await stat(path.dirname(configFile))).mode & 0o777, 0o700);
    const cfg = parse(await readFile(configFile, 'utf8')) as Record<string, any>;
    assert.equal(cfg['default-server'], 'main');
    assert.deepEqual({ ...cfg.servers.main }, { endpoint: server.url, token: server.adminToken });

    // A second server does not take over the default unless asked; token-file is stored as a path.
    const tokenFile = path.join(tmp.path, 'token');
    await writeFile(tokenFile, `${server.adminToken}\n`);
    ok(await loft(['login', 'second', server.url, '--token-file', tokenFile], env));
    let after = parse(await readFile(configFile, 'utf8')) as Record<string, any>;
    assert.equal(after['default-server'], 'main');
    assert.deepEqual({ ...after.servers.second }, { endpoint: server.url, 'token-file': tokenFile });
    ok(await loft(['login', 'second', server.url, '--token-file', tokenFile, '--set-default'], env));
    after = parse(await readFile(configFile, 'utf8')) as Record<string, any>;
    assert.equal(after['default-server'], 'second');
    // The token file is read when used.
    const listed = await loft(['cache', 'list', '--json'], env);
    ok(listed);
    assert.ok((JSON.parse(listed.stdout) as Array<{ name: string }>).some((c) => c.name === 'visible'));
    ok(await loft(['login', 'main', server.url, server.adminToken, '--set-default'], env));
    assert.equal((parse(await readFile(configFile, 'utf8')) as Record<string, any>)['default-server'], 'main');
  });

  await t.test('LOFT_SERVER and LOFT_TOKEN work without any config file', async () => {
    const bare = { HOME: path.join(tmp.path, 'bare-home'), XDG_CONFIG_HOME: path.join(tmp.path, 'bare-xdg') };
    const r = await loft(['cache', 'create', 'from-env', '--json'], { ...bare, LOFT_SERVER: server.url, LOFT_TOKEN: server.adminToken });
    ok(r);
    assert.equal((JSON.parse(r.stdout) as { name: string; is_public: boolean }).is_public, false);
    assert.equal(existsSync(path.join(bare.XDG_CONFIG_HOME, 'loft')), false);
    // Without a token, a private cache is invisible; with no server at all, a clear error.
    const anon = await loft(['cache', 'info', 'from-env'], { ...bare, LOFT_SERVER: server.url });
    oneLine(anon, /HTTP 401/);
    oneLine(await loft(['cache', 'list'], bare), /no server configured: run `loft login/);
    // LOFT_TOKEN overrides the token of a configured server.
    oneLine(await loft(['cache', 'list'], { ...env, LOFT_TOKEN: 'garbage' }), /refused the token \(HTTP 401/);
  });

  await t.test('cache create / configure change exactly the given settings', async () => {
    const created = await loft(
      ['cache', 'create', 'main:demo', '--public', '--priority', '30', '--upstream-key', 'up-a', '--upstream-key', 'up-b', '--retention', '30d'],
      env,
    );
    ok(created);
    assert.match(created.stdout, /created public cache 'demo'/);
    const info = async () => {
      const r = await loft(['cache', 'info', 'demo', '--json'], env);
      ok(r);
      return JSON.parse(r.stdout) as Record<string, any>;
    };
    const before = await info();
    assert.equal(before.is_public, true);
    assert.equal(before.priority, 30);
    assert.deepEqual(before.upstream_cache_key_names, ['up-a', 'up-b']);
    assert.equal(before.retention_period, 30 * 86400);
    assert.equal(before.store_dir, '/nix/store');
    assert.equal(before.url, `${server.url}/demo`);
    assert.equal(before.stats.paths, 0);

    ok(await loft(['cache', 'configure', 'demo', '--priority', '50'], env));
    const a = await info();
    assert.deepEqual({ ...a, stats: undefined }, { ...before, priority: 50, stats: undefined });

    ok(await loft(['cache', 'configure', 'demo', '--private', '--reset-retention'], env));
    const b = await info();
    assert.deepEqual({ ...b, stats: undefined }, { ...a, is_public: false, retention_period: null, stats: undefined });

    ok(await loft(['cache', 'configure', 'demo', '--no-upstream-keys', '--retention', 'forever'], env));
    const c = await info();
    assert.deepEqual({ ...c, stats: undefined }, { ...b, upstream_cache_key_names: [], retention_period: 0, stats: undefined });

    const regen = await loft(['cache', 'configure', 'demo', '--regenerate-key', '--json'], env);
    ok(regen);
    const d = JSON.parse(regen.stdout) as Record<string, any>;
    assert.notEqual(d.public_key, c.public_key);
    assert.deepEqual({ ...d, public_key: undefined, signing_keys: undefined, stats: undefined }, { ...c, public_key: undefined, signing_keys: undefined, stats: undefined });
    assert.deepEqual(d.signing_keys.map((k: { public_key: string; state: string }) => [k.public_key, k.state]), [[c.public_key, 'retired'], [d.public_key, 'active']]);

    oneLine(await loft(['cache', 'configure', 'demo'], env), /nothing to change/);
    oneLine(await loft(['cache', 'configure', 'demo', '--public', '--private'], env), /either --public or --private/);
    oneLine(await loft(['cache', 'configure', 'demo', '--retention', 'soon'], env), /invalid retention period 'soon'/);
    oneLine(await loft(['cache', 'create', 'demo'], env), /already exists \(HTTP 409\)/);
    oneLine(await loft(['cache', 'create', 'keyless', '--signing-key-file', '/nonexistent/key'], env), /cannot read signing key file \/nonexistent\/key: ENOENT/);
    oneLine(await loft(['cache', 'configure', 'demo', '--retire-signing-key', 'nope-1'], env), /no signing key named 'nope-1' .*\(HTTP 400\)/);
  });

  await t.test('cache info (human) and list (table and --json)', async () => {
    const r = await loft(['cache', 'info', 'demo'], env);
    ok(r);
    for (const field of ['Cache:', 'Visibility:', 'URL:', 'Public key:', 'Priority:', 'Store dir:', 'Upstream keys:', 'Retention:', 'Paths:', 'NAR bytes:', 'Stored bytes:']) {
      assert.ok(r.stdout.includes(field), `${field} missing in\n${r.stdout}`);
    }
    assert.match(r.stdout, /Visibility:\s+private/);
    assert.match(r.stdout, /Retention:\s+keep forever/);
    const table = await loft(['cache', 'list'], env);
    ok(table);
    assert.match(table.stdout, /^NAME\s+VISIBILITY\s+PRIORITY\s+URL/);
    assert.match(table.stdout, new RegExp(`demo\\s+private\\s+50\\s+${server.url}/demo`));
    const json = await loft(['cache', 'list', 'main', '--json'], env);
    ok(json);
    const names = (JSON.parse(json.stdout) as Array<{ name: string }>).map((c) => c.name).sort();
    assert.deepEqual(names, ['demo', 'from-env', 'visible']);
  });

  await t.test('path info and path delete', async () => {
    await server.createCache('paths', { is_public: false });
    const dep = await uploadPath(server, 'paths');
    const top = await uploadPath(server, 'paths', [dep.baseName]);

    const info = await loft(['path', 'info', 'paths', top.path, '--json'], env);
    ok(info);
    const p = JSON.parse(info.stdout) as Record<string, any>;
    assert.equal(p.store_path, top.path);
    assert.equal(p.nar_size, top.nar.length);
    assert.deepEqual(p.references, [dep.baseName]);
    assert.ok(p.chunks >= 1);
    for (const arg of [top.baseName, top.hash, `${top.path}/bin/hello`]) {
      const r = await loft(['path', 'info', 'main:paths', arg], env);
      ok(r);
      assert.match(r.stdout, new RegExp(`Store path:\\s+${top.path}`));
      assert.match(r.stdout, /NarHash:\s+sha256:/);
      assert.match(r.stdout, /Dedup ratio:/);
      assert.ok(r.stdout.includes(dep.baseName));
    }
    oneLine(await loft(['path', 'info', 'paths', 'not-a-path'], env), /not a store path/);
    oneLine(await loft(['path', 'info', 'paths', randomStorePath().path], env), /no such path in cache 'paths' \(HTTP 404\)/);

    // Deleting the dependency alone would break top's closure: the server's message is shown.
    const refused = await loft(['path', 'delete', 'paths', dep.path], env);
    oneLine(refused, new RegExp(`refusing to break closures: still referenced by ${top.path}`));
    const both = await loft(['path', 'delete', 'paths', dep.path, top.baseName], env);
    ok(both);
    assert.match(both.stdout, /deleted 2 paths from 'paths'/);

    const lone = await uploadPath(server, 'paths');
    const onTop = await uploadPath(server, 'paths', [lone.baseName]);
    ok(await loft(['path', 'delete', 'paths', lone.hash, '--force'], env));
    oneLine(await loft(['path', 'info', 'paths', lone.hash], env), /no such path in cache 'paths' \(HTTP 404\)/);
    const narinfo = await server.fetch(`/paths/${lone.hash}.narinfo`, { token: server.adminToken });
    assert.equal(narinfo.status, 404, 'a force-deleted path is no longer served');
    const still = await loft(['path', 'info', 'paths', onTop.hash, '--json'], env);
    ok(still);
  });

  await t.test('cache destroy asks, refuses without a terminal, and --yes destroys', async () => {
    const refused = await loft(['cache', 'destroy', 'demo'], env, 'demo\n');
    oneLine(refused, /refusing to destroy cache 'demo' without confirmation: stdin is not a terminal \(pass --yes\)/);
    ok(await loft(['cache', 'info', 'demo'], env));
    const gone = await loft(['cache', 'destroy', 'demo', '--yes'], env);
    ok(gone);
    assert.match(gone.stdout, /destroyed cache 'demo'/);
    oneLine(await loft(['cache', 'info', 'demo'], env), /no such cache 'demo' \(HTTP 404\)/);
  });

  await t.test('cache destroy through a pseudo-terminal: the typed name confirms', async (st) => {
    if (!skipUnless(st, commandUnavailable('script', 'bsdutils'))) return;
    await server.createCache('typed', {});
    const cmd = [process.execPath, '--import', 'tsx', LOFT_BIN, 'cache', 'destroy', 'typed'].map((a) => `'${a}'`).join(' ');
    const wrong = await runInPty(cmd, env, 'nope\n');
    assert.match(wrong, /Type the cache name/);
    assert.match(wrong, /error: 'nope' does not match 'typed'/);
    ok(await loft(['cache', 'info', 'typed'], env));
    const right = await runInPty(cmd, env, 'typed\n');
    assert.match(right, /destroyed cache 'typed'/);
    oneLine(await loft(['cache', 'info', 'typed'], env), /HTTP 404/);
  });

  await t.test('errors are one line; --verbose adds the stack and the HTTP details', async () => {
    const plain = await loft(['cache', 'info', 'nosuch'], env);
    oneLine(plain, /^error: no such cache 'nosuch' \(HTTP 404\)$/);
    const verbose = await loft(['cache', 'info', 'nosuch', '--verbose'], env);
    assert.equal(verbose.code, 1);
    assert.match(verbose.stderr, /^error: no such cache 'nosuch' \(HTTP 404\)\n/);
    assert.match(verbose.stderr, /HTTP status: 404/);
    assert.match(verbose.stderr, /server body: \{"error":"not_found","message":"no such cache 'nosuch'"\}/);
    assert.match(verbose.stderr, /LoftApiError.*\n\s+at /);
    oneLine(await loft(['cache', 'info', 'nosrv:demo'], env), /no server named 'nosrv'.*known: main, second/);
    oneLine(await loft(['cache', 'info', 'bad/name'], env), /invalid cache reference/);
    const unreachable = await loft(['cache', 'list'], { ...env, LOFT_SERVER: 'http://127.0.0.1:9' });
    oneLine(unreachable, /cannot reach http:\/\/127\.0\.0\.1:9/);
  });

  await t.test('loft token (online) defaults to the logged-in server', async () => {
    const r = await loft(['token', 'create', '--sub', 'from-config', '--validity', '1h', '--pull', 'demo'], env);
    ok(r);
    const listed = await loft(['token', 'list', '--json'], env);
    ok(listed);
    assert.ok((JSON.parse(listed.stdout) as Array<{ sub: string }>).some((x) => x.sub === 'from-config'));
  });

  await t.test('completion scripts for bash, zsh and fish come from the command tree', async (st) => {
    for (const shell of ['bash', 'zsh', 'fish']) {
      const r = await loft(['completion', shell], env);
      ok(r);
      for (const word of ['login', 'use', 'cache', 'configure', 'destroy', 'watch-store', '--retention', '--ignore-upstream-filter']) {
        assert.ok(r.stdout.includes(shell === 'fish' ? word.replace(/^--/, '-l ') : word), `${shell}: ${word} missing`);
      }
      assert.ok(!r.stdout.includes('store-dir <dir>'), 'hidden options stay hidden');
      const file = path.join(tmp.path, `completion.${shell}`);
      await writeFile(file, r.stdout);
      await st.test(`${shell} parses its completion script`, (sst) => {
        if (!skipUnless(sst, commandUnavailable(shell, shell))) return;
        execFileSync(shell, ['-n', file]);
      });
    }
    const bash = (await loft(['completion', 'bash'], env)).stdout;
    // The completion function itself: candidates after `loft cache`, and after `loft cache create --`.
    const probe = (line: string) =>
      execFileSync('bash', ['-c', `source "$1"; COMP_WORDS=(${line}); COMP_CWORD=$(( \${#COMP_WORDS[@]} - 1 )); _loft_complete; echo "\${COMPREPLY[*]}"`, '_', path.join(tmp.path, 'completion.bash')], {
        encoding: 'utf8',
      }).trim();
    assert.ok(bash.includes('_loft_complete'));
    assert.deepEqual(probe(`loft cache ''`).split(' ').sort(), ['configure', 'create', 'destroy', 'help', 'info', 'list', '-h', '--help'].sort());
    assert.match(probe('loft cache create --re'), /--retention/);
    assert.equal(probe('loft completion f'), 'fish');
    oneLine(await loft(['completion', 'tcsh'], env), /'tcsh' is invalid.*bash, zsh, fish/);
  });
});

/** Runs `cmd` under util-linux `script` (a pseudo-terminal), typing `input` after a moment; returns the transcript. */
function runInPty(cmd: string, env: Record<string, string>, input: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn('script', ['-qefc', cmd, '/dev/null'], { env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let typed = false;
    child.stdout.on('data', (d: Buffer) => {
      out += d;
      if (!typed && out.includes('Type the cache name')) {
        typed = true;
        child.stdin.write(input);
      }
    });
    child.stderr.on('data', (d: Buffer) => (out += d));
    child.on('error', reject);
    child.on('close', () => resolve(out.replace(/\r/g, '')));
    setTimeout(() => child.kill(), 30_000).unref();
  });
}
