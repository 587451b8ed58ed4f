// `loft token` as a child process: offline create/revoke from the server's own key material and
// database (no server call), and online create/list/revoke through the API of a running server.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { decodeJwt } from 'jose';
import { startTestServer, type TestServer } from '../../helpers/server.ts';
import { makeTempDir } from '../../helpers/tmp.ts';
import { waitForRevocation } from '../../helpers/tokens.ts';
import { runCli as loft } from '../../helpers/cli.ts';



const status = async (server: TestServer, token: string, p: string, init: RequestInit = {}) => {
  const res = await server.fetch(p, { ...init, token });
  await res.arrayBuffer();
  return res.status;
};

const json = (body: unknown): RequestInit => ({
  method: 'POST',
  headers: { 'content-type': 'application/json' },
  body: JSON.stringify(body),
});

test('loft token: offline and online', { timeout: 120_000 }, async (t) => {
  const server = await startTestServer({ db: 'sqlite' });
  const dataDir = await makeTempDir('loft-token-cmd-');
  t.after(async () => {
    await server.close();
    await dataDir.cleanup();
  });
  await writeFile(path.join(dataDir.path, 'token-secret'), `${server.config.auth.hs256Secret}\n`);
  for (const name of ['team-a', 'team-b', 'other']) await server.createCache(name, { is_public: false });
  const offline = { LOFT_DATA_DIR: dataDir.path, LOFT_DATABASE_URL: server.config.database.url };

  await t.test('offline create signs with the server key; the token grants exactly what was asked', async () => {
    const r = await loft(
      ['token', 'create', '--sub', 'ci', '--validity', '2h', '--pull', 'team-*', '--push', 'team-a', '--dump-claims'],
      { LOFT_DATA_DIR: dataDir.path },
    );
    assert.equal(r.code, 0, r.stderr);
    const token = r.stdout.trim();
    assert.match(token, /^[\w-]+\.[\w-]+\.[\w-]+$/);
    const claims = JSON.parse(r.stderr) as Record<string, unknown>;
    assert.deepEqual(claims, decodeJwt(token));
    assert.deepEqual(claims['https://loft.dev/v1'], { caches: { 'team-*': ['pull'], 'team-a': ['push'] } });
    assert.equal(claims.sub, 'ci');
    assert.equal((claims.exp as number) - (claims.nbf as number), 7200);

    // The exact key decides for team-a (permissions are never merged): push, not pull.
    assert.equal(await status(server, token, '/team-a/nix-cache-info'), 403);
    assert.equal(await status(server, token, '/team-b/nix-cache-info'), 200);
    assert.equal(await status(server, token, '/other/nix-cache-info'), 403);
    assert.equal(await status(server, token, '/_api/v1/get-missing-paths', json({ cache: 'team-a', store_path_hashes: [] })), 200);
    assert.equal(await status(server, token, '/_api/v1/get-missing-paths', json({ cache: 'team-b', store_path_hashes: [] })), 403);
    assert.equal(await status(server, token, '/_api/v1/cache-config/team-a', { method: 'DELETE' }), 403);
    assert.equal(await status(server, token, '/_api/v1/tokens'), 403);
  });

  await t.test('offline create with --admin and a wildcard; --server-config works without env', async () => {
    const config = path.join(dataDir.path, 'server.toml');
    await writeFile(config, `data_dir = ${JSON.stringify(dataDir.path)}\n`);
    const r = await loft(['token', 'create', '--server-config', config, '--sub', 'ops', '--validity', '1d', '--admin', '--destroy-cache', 'team-*']);
    assert.equal(r.code, 0, r.stderr);
    const token = r.stdout.trim();
    assert.equal(await status(server, token, '/_api/v1/tokens'), 200);
    assert.equal(await status(server, token, '/team-a/nix-cache-info'), 403);
  });

  await t.test('offline create never generates a secret: a clear error and no file', async () => {
    const empty = await makeTempDir('loft-token-empty-');
    t.after(() => empty.cleanup());
    const r = await loft(['token', 'create', '--sub', 'x', '--validity', '1d', '--pull', 'a'], { LOFT_DATA_DIR: empty.path });
    assert.equal(r.code, 1);
    assert.equal(r.stdout, '');
    assert.match(r.stderr, /^error: no token secret: .*token-secret does not exist/);
    assert.equal(r.stderr.trim().split('\n').length, 1);
    assert.deepEqual(await readdir(empty.path), []);
  });

  await t.test('bad input is one `error:` line and exit code 1', async () => {
    for (const [args, message] of [
      [['--validity', '9x', '--pull', 'a'], /^error: invalid duration '9x'/],
      [['--validity', '99999y', '--pull', 'a'], /^error: token validity 99999y exceeds this server's maximum of 1y \(auth.max_token_validity\)/],
      [['--validity', '1d', '--pull', 'bad name'], /^error: invalid cache pattern 'bad name'/],
      [['--validity', '1d'], /^error: the token would grant nothing/],
      [['--pull', 'a'], /^error: required option '--validity <duration>' not specified/],
    ] as const) {
      const r = await loft(['token', 'create', '--sub', 'x', ...args], { LOFT_DATA_DIR: dataDir.path });
      assert.equal(r.code, 1, args.join(' '));
      assert.match(r.stderr, message);
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    }
  });

  await t.test('offline revoke writes the deny list; the server refuses the token after its cache TTL', async () => {
    const created = await loft(['token', 'create', '--sub', 'tmp', '--validity', '1h', '--pull', 'team-a'], offline);
    const token = created.stdout.trim();
    assert.equal(await status(server, token, '/team-a/nix-cache-info'), 200);
    const r = await loft(['token', 'revoke', decodeJwt(token).jti!], offline);
    assert.equal(r.code, 0, r.stderr);
    await waitForRevocation();
    const res = await server.fetch('/team-a/nix-cache-info', { token });
    assert.equal(res.status, 401);
    assert.equal(((await res.json()) as { message: string }).message, 'token has been revoked');
  });

  await t.test('online create, list and revoke against the running server', async () => {
    const api = ['--endpoint', server.url, '--token', server.adminToken];
    const created = await loft(['token', 'create', ...api, '--sub', 'web', '--validity', '1h', '--pull', 'other', '--dump-claims']);
    assert.equal(created.code, 0, created.stderr);
    const token = created.stdout.trim();
    const { jti } = decodeJwt(token);
    assert.equal(await status(server, token, '/other/nix-cache-info'), 200);

    const listed = await loft(['token', 'list'], { LOFT_SERVER: server.url, LOFT_TOKEN: server.adminToken });
    assert.equal(listed.code, 0, listed.stderr);
    const line = listed.stdout.split('\n').find((l) => l.startsWith(`${jti}\t`));
    assert.ok(line, listed.stdout);
    assert.match(line, /^\S+\tweb\texpires \S+\t\{"caches":\{"other":\["pull"\]\}\}$/);

    const revoked = await loft(['token', 'revoke', jti!, ...api]);
    assert.equal(revoked.code, 0, revoked.stderr);
    assert.equal(revoked.stdout, `revoked ${jti}\n`);
    await waitForRevocation();
    assert.equal(await status(server, token, '/other/nix-cache-info'), 401);
    const relisted = await loft(['token', 'list', '--json', ...api]);
    const entry = (JSON.parse(relisted.stdout) as Array<{ jti: string; revoked_at: string | null }>).find((e) => e.jti === jti);
    assert.ok(entry?.revoked_at, relisted.stdout);
  });

  await t.test('online errors: a non-admin token and no server at all', async () => {
    const created = await loft(['token', 'create', '--sub', 'r', '--validity', '1h', '--pull', 'other'], { LOFT_DATA_DIR: dataDir.path });
    const r = await loft(['token', 'list', '--endpoint', server.url, '--token', created.stdout.trim()]);
    assert.equal(r.code, 1);
    assert.equal(r.stderr, 'error: GET /_api/v1/tokens: 403 this token is not an admin token\n');
    const none = await loft(['token', 'list']);
    assert.equal(none.code, 1);
    assert.match(none.stderr, /^error: no server: pass --endpoint URL or set LOFT_SERVER/);
  });
});
