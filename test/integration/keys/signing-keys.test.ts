// Cache signing keys over the API, on SQLite+disk and PostgreSQL+S3: imported write-only, added
// for a rotation (every narinfo signed by both), retired; signatures kept per path and key;
// keys declared in the server config; the 0007 backfill of existing caches.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { DB_KINDS, freshDatabase } from '../../helpers/databases.ts';
import { postgresUnavailable, skipUnless } from '../../helpers/env.ts';
import { startTestServer, type TestServer } from '../../helpers/server.ts';
import { makeTempDir } from '../../helpers/tmp.ts';
import { narInfoText, nixUpload, sampleNar } from '../../helpers/nar.ts';
import { parseNarInfo, type NarInfo } from '../../../src/nix/narinfo.ts';
import { narFingerprint } from '../../../src/nix/fingerprint.ts';
import { SigningKey, type PublicKey } from '../../../src/nix/signing.ts';
import type { CacheConfig } from '../../../src/api/v1.ts';
import { applyDeclaredCaches } from '../../../src/server/declared-caches.ts';
import { resolveConfig } from '../../../src/server/config.ts';
import { migrateTo, migrateToLatest } from '../../../src/db/migrate.ts';
import { openDatabase } from '../../../src/db/dialect.ts';

const signedBy = (info: NarInfo, key: PublicKey) =>
  info.sigs.filter((s) => key.verify(narFingerprint(info.storePath, info.narHash, info.narSize, info.references), s));

function api(server: TestServer) {
  const call = async (method: string, cache: string, body?: unknown) => {
    const res = await server.fetch(`/_api/v1/cache-config/${cache}`, {
      method,
      token: server.adminToken,
      headers: body === undefined ? {} : { 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    return { status: res.status, text, json: () => JSON.parse(text) as CacheConfig };
  };
  return {
    call,
    async ok(method: string, cache: string, body?: unknown): Promise<CacheConfig> {
      const r = await call(method, cache, body);
      assert.ok(r.status === 200 || r.status === 201, `${method} ${cache}: ${r.status} ${r.text}`);
      return r.json();
    },
    /** Pushes one fresh path the way `nix copy --to` does and returns its hash. */
    async push(cache: string): Promise<string> {
      const up = await nixUpload(await sampleNar(), { compression: 'zstd' });
      const put = (p: string, body: BodyInit) => server.fetch(`/${cache}/${p}`, { method: 'PUT', token: server.adminToken, body });
      assert.equal((await put(`nar/${up.fileName}`, new Uint8Array(up.file))).status, 201);
      assert.equal((await put(`${up.storePath.hash}.narinfo`, narInfoText(up.narInfo))).status, 204);
      return up.storePath.hash;
    },
    async narInfo(cache: string, hash: string): Promise<NarInfo> {
      const res = await server.fetch(`/${cache}/${hash}.narinfo`, { token: server.adminToken });
      assert.equal(res.status, 200);
      return parseNarInfo(await res.text());
    },
  };
}

async function keyCases(t: TestContext, server: TestServer): Promise<void> {
  const c = api(server);
  const oldKey = SigningKey.generate('cache.example.com-1');
  const newKey = SigningKey.generate('cache.example.com-2');
  const secretPart = (k: SigningKey) => k.toString().split(':')[1]!;

  await t.test('an imported key signs the cache; no API answer ever contains a secret key', async () => {
    const created = await c.ok('POST', 'imp', { is_public: true, signing_key: `${oldKey}\n` });
    assert.equal(created.public_key, oldKey.publicKey().toString());
    assert.deepEqual(created.signing_keys.map((k) => [k.name, k.public_key, k.state]), [['cache.example.com-1', oldKey.publicKey().toString(), 'active']]);
    const hash = await c.push('imp');
    assert.equal(signedBy(await c.narInfo('imp', hash), oldKey.publicKey()).length, 1);
    const answers = [
      (await c.call('GET', 'imp')).text,
      (await c.call('PATCH', 'imp', { add_signing_key: newKey.toString() })).text,
      await (await server.fetch('/_api/v1/caches', { token: server.adminToken })).text(),
      (await c.call('PATCH', 'imp', { retire_signing_key: 'cache.example.com-2' })).text,
    ];
    for (const text of answers) {
      for (const k of [oldKey, newKey]) assert.ok(!text.includes(secretPart(k)), `a secret key in ${text}`);
    }
  });

  await t.test('rotation: an added key signs alongside the old one, then the old one is retired', async () => {
    await c.ok('POST', 'rot', { signing_key: oldKey.toString() });
    const before = await c.push('rot');
    const overlap = await c.ok('PATCH', 'rot', { add_signing_key: newKey.toString() });
    assert.deepEqual(overlap.signing_keys.map((k) => [k.name, k.state]), [['cache.example.com-1', 'active'], ['cache.example.com-2', 'active']]);
    assert.equal(overlap.public_key, newKey.publicKey().toString(), 'public_key names the newest active key');
    const after = await c.push('rot');
    for (const hash of [before, after]) {
      const info = await c.narInfo('rot', hash);
      assert.equal(signedBy(info, oldKey.publicKey()).length, 1, 'the old key still signs');
      assert.equal(signedBy(info, newKey.publicKey()).length, 1, 'the new key signs too');
    }
    const retired = await c.ok('PATCH', 'rot', { retire_signing_key: 'cache.example.com-1' });
    assert.deepEqual(retired.signing_keys.map((k) => [k.name, k.state, k.retired_at !== null]), [['cache.example.com-1', 'retired', true], ['cache.example.com-2', 'active', false]]);
    const info = await c.narInfo('rot', before);
    assert.equal(signedBy(info, oldKey.publicKey()).length, 0, 'a retired key signs nothing');
    assert.deepEqual(signedBy(info, newKey.publicKey()).length, 1);
    assert.equal(info.sigs.length, 1);
  });

  await t.test('a signature is made once per path and key: stored ones are served, only an added key signs', async () => {
    await c.ok('POST', 'memo', { signing_key: oldKey.toString() });
    const hash = await c.push('memo');
    await c.narInfo('memo', hash);
    const row = () => server.services.kysely.selectFrom('objects').select(['id', 'server_sig', 'server_sig_key']).where('store_path_hash', '=', hash).executeTakeFirstOrThrow();
    const first = await row();
    assert.equal(first.server_sig_key, oldKey.publicKey().toString());
    // A marker in place of the stored signature: if it is served, nothing was re-signed.
    const marker = `cache.example.com-1:${Buffer.alloc(64, 1).toString('base64')}`;
    await server.services.kysely.updateTable('objects').set({ server_sig: marker }).where('id', '=', first.id).execute();
    server.services.narinfoCache.forgetCache((await server.services.caches.get('memo')).id);
    assert.ok((await c.narInfo('memo', hash)).sigs.includes(marker));
    await c.ok('PATCH', 'memo', { add_signing_key: newKey.toString() });
    const info = await c.narInfo('memo', hash);
    assert.ok(info.sigs.includes(marker), 'the old key is not asked to sign again');
    assert.equal(signedBy(info, newKey.publicKey()).length, 1);
    const second = await row();
    assert.equal(second.server_sig_key, `${oldKey.publicKey()}\n${newKey.publicKey()}`);
    assert.equal(second.server_sig!.split('\n')[0], marker);
  });

  await t.test('generate_signing_key adds a server-made key with the next name; regenerate_keypair replaces them all', async () => {
    const created = await c.ok('POST', 'gen', {});
    const first = created.signing_keys[0]!.name;
    assert.match(first, /-gen-1$/);
    const added = await c.ok('PATCH', 'gen', { generate_signing_key: true });
    assert.deepEqual(added.signing_keys.map((k) => [k.name, k.state]), [[first, 'active'], [first.replace(/-1$/, '-2'), 'active']]);
    const replaced = await c.ok('PATCH', 'gen', { regenerate_keypair: true });
    assert.deepEqual(replaced.signing_keys.map((k) => [k.name, k.state]), [[first, 'retired'], [first.replace(/-1$/, '-2'), 'retired'], [first.replace(/-1$/, '-3'), 'active']]);
  });

  await t.test('signing_key on PATCH replaces every key; re-importing the same key changes nothing', async () => {
    await c.ok('POST', 'rep', {});
    const r = await c.ok('PATCH', 'rep', { signing_key: oldKey.toString() });
    assert.deepEqual(r.signing_keys.map((k) => k.state), ['retired', 'active']);
    const again = await c.ok('PATCH', 'rep', { signing_key: oldKey.toString() });
    assert.deepEqual(again.signing_keys, r.signing_keys);
  });

  await t.test('bad key requests are refused with the status and a message that names the problem, not the secret', async () => {
    await c.ok('POST', 'bad', { signing_key: oldKey.toString() });
    const cases: Array<[string, string, unknown, number, RegExp]> = [
      ['POST', 'bad2', { signing_key: 'k:notbase64!' }, 400, /signing_key: invalid secret key 'k': not valid base64/],
      ['POST', 'bad3', { signing_key: '' }, 400, /signing_key: no signing key/],
      ['POST', 'bad4', { add_signing_key: newKey.toString() }, 400, /add_signing_key applies to PATCH only/],
      ['PATCH', 'bad', { add_signing_key: SigningKey.generate('cache.example.com-1').toString() }, 409, /already has a different signing key named 'cache.example.com-1'.*--key-name cache.example.com-2/],
      ['PATCH', 'bad', { retire_signing_key: 'nope-1' }, 400, /has no signing key named 'nope-1' \(its keys: cache.example.com-1\)/],
      ['PATCH', 'bad', { retire_signing_key: 'cache.example.com-1' }, 409, /would have no active signing key/],
    ];
    for (const [method, cache, body, status, re] of cases) {
      const r = await c.call(method, cache, body);
      assert.equal(r.status, status, `${JSON.stringify(body)}: ${r.text}`);
      assert.match((JSON.parse(r.text) as { message: string }).message, re);
      assert.ok(!r.text.includes(secretPart(newKey)));
    }
    assert.equal((await c.call('GET', 'bad2')).status, 404, 'nothing was created');
    assert.deepEqual((await c.ok('GET', 'bad')).signing_keys.map((k) => k.state), ['active'], 'nothing was changed');
  });

  await t.test('declared caches: created with their keys from a file or env var, idempotent, keys left out retired', async () => {
    const tmp = await makeTempDir('loft-keys-');
    t.after(() => tmp.cleanup());
    const file = path.join(tmp.path, 'signing-key');
    await writeFile(file, `${oldKey}\n`, { mode: 0o600 });
    const declare = async (toml: Record<string, unknown>, env: NodeJS.ProcessEnv = {}) => {
      const cfg = resolveConfig({ default_cache: 'declared', ...toml }, env);
      await applyDeclaredCaches({ ...server.services, config: cfg });
      return c.ok('GET', 'declared');
    };
    const first = await declare({ caches: { declared: { signing_key_file: file } } });
    assert.equal(first.is_public, true, 'the default cache is public, like the one made at first start');
    assert.deepEqual(first.signing_keys.map((k) => [k.public_key, k.state]), [[oldKey.publicKey().toString(), 'active']]);
    assert.deepEqual((await declare({ caches: { declared: { signing_key_file: file } } })).signing_keys, first.signing_keys, 'a second start changes nothing');
    await writeFile(file, `${oldKey}\n${newKey}\n`);
    const both = await declare({ caches: { declared: { signing_key_file: file } } });
    assert.deepEqual(both.signing_keys.map((k) => k.state), ['active', 'active']);
    const viaEnv = await declare({}, { LOFT_SIGNING_KEY: newKey.toString() });
    assert.deepEqual(viaEnv.signing_keys.map((k) => [k.name, k.state]), [['cache.example.com-1', 'retired'], ['cache.example.com-2', 'active']]);
    const other = resolveConfig({ default_cache: '', caches: { 'priv.ate': { signing_key_env: 'K' } } }, { K: oldKey.toString() });
    await applyDeclaredCaches({ ...server.services, config: other });
    const priv = await c.ok('GET', 'priv.ate');
    assert.equal(priv.is_public, false);
    assert.equal(priv.public_key, oldKey.publicKey().toString());
    await assert.rejects(
      declare({ caches: { declared: { signing_key_file: path.join(tmp.path, 'missing') } } }),
      /cannot read the signing key file .*missing of cache 'declared': ENOENT/,
    );
    await writeFile(file, 'garbage');
    await assert.rejects(declare({ caches: { declared: { signing_key_file: file } } }), /config: cache 'declared': signing key file .* expected 'name:base64'/);
  });
}

for (const db of DB_KINDS) {
  test(`cache signing keys: import, rotation, retirement, declared keys (${db})`, { timeout: 120_000 }, async (t) => {
    if (db === 'postgres' && !skipUnless(t, await postgresUnavailable())) return;
    const server = await startTestServer({ db });
    t.after(() => server.close());
    await keyCases(t, server);
  });

  test(`migration 0007 makes every cache's key its first active key (${db})`, async (t) => {
    if (db === 'postgres' && !skipUnless(t, await postgresUnavailable())) return;
    const tmp = await makeTempDir('loft-mig-');
    const database = await freshDatabase(db, tmp.path);
    const conn = openDatabase({ url: database.url });
    t.after(async () => {
      await conn.close();
      await database.drop();
      await tmp.cleanup();
    });
    await migrateTo(conn, '0003_chunk_storage_key');
    const key = SigningKey.generate('loft-old-1');
    const { id } = await conn.kysely
      .insertInto('caches')
      .values({ name: 'old', signing_key: key.toString(), public_key: key.publicKey().toString(), is_public: 1, priority: 41, store_dir: '/nix/store', upstream_key_names: '[]', retention_seconds: null, created_at: 1234 })
      .returning('id')
      .executeTakeFirstOrThrow();
    await migrateToLatest(conn);
    const rows = await conn.kysely.selectFrom('cache_keys').selectAll().execute();
    assert.deepEqual(rows.map(({ id: _, ...r }) => r), [
      { cache_id: id, name: 'loft-old-1', secret_key: key.toString(), public_key: key.publicKey().toString(), state: 'active', created_at: 1234, retired_at: null },
    ]);
  });
}
