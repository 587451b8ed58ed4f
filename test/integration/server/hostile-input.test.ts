// Issue 13, "Found in review": requests a hostile client can make cheaply must not cost the server
// unbounded memory, time or information. Each case runs against a real server on SQLite+disk and
// PostgreSQL+S3.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { DB_KINDS } from '../../helpers/databases.ts';
import { nix, nixEnv } from '../../helpers/nix.ts';
import { makeTempDir } from '../../helpers/tmp.ts';
import { nixUnavailable, postgresUnavailable, skipUnless } from '../../helpers/env.ts';
import { startTestServer, type TestServer } from '../../helpers/server.ts';
import { narInfoText, nixUpload, randomStorePath, sampleNar, uploadPathMeta, type NixUpload } from '../../helpers/nar.ts';
import { parseNarInfo } from '../../../src/nix/narinfo.ts';
import { refused } from './bad-input-harness.ts';
import { issueViaApi } from '../../helpers/tokens.ts';

async function hostileCases(t: TestContext, server: TestServer): Promise<void> {
  await t.test('a 7 MB cache name is refused with a short answer, not echoed back', async () => {
    const cache = 'a'.repeat(7 * 1024 * 1024);
    const ask = async (token?: string) => {
      const res = await server.fetch('/_api/v1/get-missing-paths', {
        method: 'POST',
        token,
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ cache, store_path_hashes: [] }),
      });
      const text = await res.text();
      assert.ok(text.length < 2000, `answer is ${text.length} bytes`);
      return { status: res.status, text };
    };
    // Anonymous: refused before the body is read at all.
    assert.equal((await ask()).status, 401);
    // With a token the body is parsed, and the name is quoted only in part.
    const authed = await ask(server.adminToken);
    assert.equal(authed.status, 400, authed.text.slice(0, 200));
    assert.match(authed.text, /invalid cache name 'a+… \(7340032 characters\)'/);
  });

  await t.test('anonymous lookups of made-up cache names do not grow the server memory without bound', async () => {
    const before = server.services.caches.memoised;
    for (let i = 0; i < 1500; i += 50) {
      await Promise.all(
        Array.from({ length: 50 }, async (_, j) => {
          const res = await server.fetch(`/made-up-${i + j}/nix-cache-info`);
          await res.arrayBuffer();
          assert.equal(res.status, 401);
        }),
      );
    }
    // Invalid names are never looked up at all.
    const res = await server.fetch(`/${'-'.repeat(60)}/nix-cache-info`);
    await res.arrayBuffer();
    assert.ok(res.status === 400 || res.status === 404, `status ${res.status}`);
    assert.ok(server.services.caches.memoised <= 1000, `memo holds ${server.services.caches.memoised} names (was ${before})`);
  });

  await t.test('a store_dir with a newline is refused and nix-cache-info carries no injected line', async () => {
    await server.createCache('storedir');
    const injected = '/nix/store\nWantMassQuery: 0';
    for (const [method, path] of [['PATCH', '/_api/v1/cache-config/storedir'], ['POST', '/_api/v1/cache-config/storedir2']]) {
      const res = await server.fetch(path, {
        method,
        token: server.adminToken,
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ store_dir: injected }),
      });
      const text = await res.text();
      assert.equal(res.status, 400, text);
      assert.match(text, /invalid store_dir .*control characters/);
    }
    const info = await (await server.fetch('/storedir/nix-cache-info', { token: server.adminToken })).text();
    assert.equal(info.split('\n').filter((l) => l.startsWith('WantMassQuery')).length, 1, info);
    assert.match(info, /^StoreDir: \/nix\/store$/m);
  });

  await t.test('upload-path does not tell a pusher whether its content exists in a cache it cannot read', async () => {
    await server.createCache('secret-b', { is_public: false });
    await server.createCache('tenant-a', { is_public: false });
    const nar = await sampleNar('guessed-content', 400_000);
    const put = async (cache: string, token: string) => {
      const res = await server.fetch('/_api/v1/upload-path', {
        method: 'PUT',
        token,
        headers: { 'x-loft-nar-info': JSON.stringify(uploadPathMeta(cache, randomStorePath().path, nar)) },
        body: new Uint8Array(nar),
      });
      const text = await res.text();
      assert.equal(res.status, 200, text);
      return JSON.parse(text) as { kind: string; new_chunk_bytes: number };
    };
    assert.equal((await put('secret-b', server.adminToken)).kind, 'uploaded');
    const pusher = await issueViaApi(server, { caches: { 'tenant-a': ['push', 'pull'] } });
    const first = await put('tenant-a', pusher.token);
    assert.equal(first.kind, 'uploaded', 'content in secret-b must not show as known');
    assert.ok(first.new_chunk_bytes >= nar.length - 4096, `new_chunk_bytes ${first.new_chunk_bytes} of ${nar.length}`);
    // Once in a cache the pusher reads, the same content is known to it.
    const again = await put('tenant-a', pusher.token);
    assert.deepEqual([again.kind, again.new_chunk_bytes], ['deduplicated', 0]);
  });

  await t.test('the first NAR of a path is kept; replacing it needs delete and ?replace=true', async () => {
    await server.createCache('first-wins', { is_public: false });
    const pusher = await issueViaApi(server, { caches: { 'first-wins': ['push', 'pull'] } });
    const first = await nixUpload(await sampleNar('first'));
    const second = await nixUpload(await sampleNar('second'), { storePath: first.storePath });
    const putNar = async (up: NixUpload, token: string) => {
      const res = await server.fetch(`/first-wins/nar/${up.fileName}`, { method: 'PUT', token, body: new Uint8Array(up.file) });
      assert.equal(res.status, 201, await res.text());
    };
    const putInfo = (up: NixUpload, token: string, query = '') =>
      server.fetch(`/first-wins/${up.storePath.hash}.narinfo${query}`, { method: 'PUT', token, body: narInfoText(up.narInfo) });
    const servedHash = async () => parseNarInfo(await (await server.fetch(`/first-wins/${first.storePath.hash}.narinfo`, { token: pusher.token })).text()).narHash;

    await putNar(first, pusher.token);
    const created = await putInfo(first, pusher.token);
    assert.equal(created.status, 204, await created.text());
    assert.equal(created.headers.get('x-loft-path'), 'created');
    // `nix copy` again of the identical path: success, nothing changes.
    await putNar(first, pusher.token);
    const same = await putInfo(first, pusher.token);
    assert.equal(same.status, 204, await same.text());
    assert.equal(same.headers.get('x-loft-path'), 'unchanged');

    await putNar(second, pusher.token);
    await refused(await putInfo(second, pusher.token), 409, /already in cache 'first-wins' with a different NAR.*needs the 'delete' permission and \?replace=true/);
    await refused(await putInfo(second, pusher.token, '?replace=true'), 403, /does not grant 'delete'/);
    assert.equal(await servedHash(), first.narInfo.narHash);

    const replaced = await putInfo(second, server.adminToken, '?replace=true');
    assert.equal(replaced.status, 204, await replaced.text());
    assert.equal(replaced.headers.get('x-loft-path'), 'replaced');
    assert.equal(await servedHash(), second.narInfo.narHash);

    // The same rule on Loft's own upload-path.
    const other = await sampleNar('third');
    const upload = (token: string, query = '') =>
      server.fetch(`/_api/v1/upload-path${query}`, {
        method: 'PUT',
        token,
        headers: { 'x-loft-nar-info': JSON.stringify(uploadPathMeta('first-wins', first.storePath.path, other)) },
        body: new Uint8Array(other),
      });
    await refused(await upload(pusher.token), 409, /already in cache/);
    const ok = await upload(server.adminToken, '?replace=true');
    assert.equal(ok.status, 200);
    assert.equal(((await ok.json()) as { outcome: string }).outcome, 'replaced');
  });

  await t.test('a content-addressed path must have the store path and NAR its CA field says (real nix paths)', async (st) => {
    if (!skipUnless(st, nixUnavailable())) return;
    await server.createCache('ca-paths');
    const tmp = await makeTempDir('loft-ca-push-');
    st.after(() => tmp.cleanup());
    const env = nixEnv(tmp.path);
    const made = async (content: string) => {
      await mkdir(path.join(tmp.path, content), { recursive: true });
      await writeFile(path.join(tmp.path, content, 'file'), content);
      const storePath = await nix(['--add-fixed', '--recursive', 'sha256', path.join(tmp.path, content)], env, 'nix-store');
      const [info] = JSON.parse(await nix(['path-info', '--json', storePath], env)) as { ca: string }[];
      const nar = Buffer.from(execFileSync('nix-store', ['--dump', storePath], { env, maxBuffer: 1 << 26 }));
      return { storePath, ca: info.ca, nar };
    };
    const salt = randomStorePath().hash;
    const a = await made(`a-${salt}`);
    const b = await made(`b-${salt}`);
    const push = (storePath: string, ca: string, nar: Buffer) =>
      server.fetch('/_api/v1/upload-path', {
        method: 'PUT',
        token: server.adminToken,
        headers: { 'x-loft-nar-info': JSON.stringify(uploadPathMeta('ca-paths', storePath, nar, { ca })) },
        body: new Uint8Array(nar),
      });
    // Another path's CA field: the name does not follow from it.
    await refused(await push(a.storePath, b.ca, a.nar), 400, /does not follow from its CA field .* that content is \/nix\/store\/\w{32}-a-/);
    // The right path and CA, but another NAR: its hash is not the CA hash.
    await refused(await push(a.storePath, a.ca, b.nar), 400, /does not match its CA field/);
    await refused(await push(a.storePath, 'fixed:r:sha256:nonsense', a.nar), 400, /invalid CA field/);
    const ok = await push(a.storePath, a.ca, a.nar);
    assert.equal(ok.status, 200, await ok.text());
  });
}

for (const db of DB_KINDS) {
  test(`hostile requests cost bounded memory, time and information (${db})`, { timeout: 300_000 }, async (t) => {
    if (db === 'postgres' && !skipUnless(t, await postgresUnavailable())) return;
    const server = await startTestServer({ db });
    t.after(() => server.close());
    await hostileCases(t, server);
  });
}
