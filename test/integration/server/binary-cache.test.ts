// The Nix binary-cache protocol as Loft serves it (nix-cache-info, narinfo,
// NAR files, listings, signatures) and the cache management API, over HTTP
// against a real server on SQLite and PostgreSQL.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { DB_KINDS } from '../../helpers/databases.ts';
import { postgresUnavailable, skipUnless } from '../../helpers/env.ts';
import { startTestServer, type TestServer } from '../../helpers/server.ts';
import { narInfoText, nixUpload, randomStorePath, sampleNar, sha256Nix32, type NixUpload } from '../../helpers/nar.ts';
import { parseCacheInfo } from '../../../src/nix/cache-info.ts';
import { parseNarInfo, type NarInfo } from '../../../src/nix/narinfo.ts';
import { narFingerprint } from '../../../src/nix/fingerprint.ts';
import { PublicKey, SigningKey } from '../../../src/nix/signing.ts';
import { listNar } from '../../../src/nix/nar/listing.ts';
import { zstdDecompressSync } from '../../../src/compression/zstd.ts';
import type { CacheConfig as CacheJson } from '../../../src/api/v1.ts';


class Client {
  constructor(readonly server: TestServer) {}
  get token(): string {
    return this.server.adminToken;
  }
  get(path: string, init: RequestInit & { token?: string } = {}): Promise<Response> {
    return this.server.fetch(path, { token: this.token, ...init });
  }
  /** Pushes one path the way `nix copy --to` does: NAR first, then its narinfo. */
  async push(cache: string, up: NixUpload, narInfo: string = narInfoText(up.narInfo)): Promise<void> {
    const r1 = await this.server.fetch(`/${cache}/nar/${up.fileName}`, { method: 'PUT', token: this.token, body: new Uint8Array(up.file) });
    assert.equal(r1.status, 201, `PUT nar: ${await r1.text()}`);
    await this.putNarInfo(cache, up.storePath.hash, narInfo);
  }
  async putNarInfo(cache: string, hash: string, text: string): Promise<void> {
    const r = await this.server.fetch(`/${cache}/${hash}.narinfo`, { method: 'PUT', token: this.token, body: text });
    assert.equal(r.status, 204, `PUT narinfo: ${await r.text()}`);
  }
  async narInfo(cache: string, hash: string): Promise<NarInfo> {
    const r = await this.get(`/${cache}/${hash}.narinfo`);
    const text = await r.text();
    assert.equal(r.status, 200, text);
    assert.match(r.headers.get('content-type') ?? '', /^text\/x-nix-narinfo/);
    return parseNarInfo(text);
  }
  async bytes(path: string): Promise<Buffer> {
    const r = await this.get(path);
    assert.equal(r.status, 200, path);
    return Buffer.from(await r.arrayBuffer());
  }
  async config(cache: string): Promise<CacheJson> {
    const r = await this.get(`/_api/v1/cache-config/${cache}`);
    assert.equal(r.status, 200);
    return (await r.json()) as CacheJson;
  }
  json(method: string, path: string, body: unknown, token: string | undefined = this.token): Promise<Response> {
    return this.server.fetch(path, { method, token, headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  }
}

const count = async (s: TestServer, table: 'nars' | 'chunks' | 'nar_chunks' | 'objects'): Promise<number> => {
  const row = await s.services.kysely
    .selectFrom(table)
    .select(({ fn }) => fn.countAll<number>().as('n'))
    .executeTakeFirstOrThrow();
  return Number(row.n);
};

/** Signatures of `info` that verify with `key` (over Nix's fingerprint). */
function verifying(info: NarInfo, key: PublicKey): string[] {
  const fp = narFingerprint(info.storePath, info.narHash, info.narSize, info.references);
  return info.sigs.filter((s) => key.verify(fp, s));
}

async function protocolCases(t: TestContext, server: TestServer): Promise<void> {
  const c = new Client(server);
  let n = 0;
  const newCache = async (settings: Record<string, unknown> = {}) => {
    const name = `bc-${++n}`;
    await server.createCache(name, settings);
    return name;
  };

  await t.test('nix-cache-info names the store dir, mass query and the cache priority', async () => {
    const name = await newCache({ priority: 30 });
    const r = await c.get(`/${name}/nix-cache-info`);
    assert.equal(r.status, 200);
    assert.match(r.headers.get('content-type') ?? '', /^text\/x-nix-cache-info/);
    const text = await r.text();
    assert.equal(text, 'StoreDir: /nix/store\nWantMassQuery: 1\nPriority: 30\n');
    assert.deepEqual(parseCacheInfo(text), { storeDir: '/nix/store', wantMassQuery: true, priority: 30 });
  });

  await t.test("PUT nix-cache-info (what Nix sends first) is accepted for the cache's store dir and refused for another", async () => {
    const name = await newCache();
    const ok = await c.get(`/${name}/nix-cache-info`, { method: 'PUT', body: 'StoreDir: /nix/store\n' });
    assert.equal(ok.status, 204);
    const bad = await c.get(`/${name}/nix-cache-info`, { method: 'PUT', body: 'StoreDir: /gnu/store\n' });
    assert.equal(bad.status, 400);
    assert.match(((await bad.json()) as { message: string }).message, /holds paths of \/nix\/store, not \/gnu\/store/);
    // The cache info is unchanged.
    assert.match(await (await c.get(`/${name}/nix-cache-info`)).text(), /^StoreDir: \/nix\/store\n/);
  });

  await t.test('HEAD narinfo answers 200 for a pushed path and 404 for an absent one, without a body', async () => {
    const name = await newCache();
    const up = await nixUpload(await sampleNar());
    await c.push(name, up);
    const present = await c.get(`/${name}/${up.storePath.hash}.narinfo`, { method: 'HEAD' });
    assert.equal(present.status, 200);
    assert.equal((await present.arrayBuffer()).byteLength, 0);
    const absent = await c.get(`/${name}/${randomStorePath().hash}.narinfo`, { method: 'HEAD' });
    assert.equal(absent.status, 404);
  });

  await t.test('the narinfo describes the served file exactly: URL, zstd, FileHash/FileSize of the GET bytes, NarHash/NarSize, sorted References', async () => {
    const name = await newCache();
    const refs = [randomStorePath('zz-last').baseName, randomStorePath('aa-first').baseName, randomStorePath('mm').baseName];
    const deriver = randomStorePath('thing.drv').baseName;
    const up = await nixUpload(await sampleNar(undefined, 400_000), { compression: 'xz', references: refs, deriver });
    await c.push(name, up);
    const info = await c.narInfo(name, up.storePath.hash);
    assert.equal(info.storePath, up.storePath.path);
    assert.equal(info.compression, 'zstd');
    assert.match(info.url, /^nar\/[0-9a-df-np-sv-z]{52}\.nar\.zst$/);
    assert.equal(info.narHash, sha256Nix32(up.nar));
    assert.equal(info.narSize, up.nar.length);
    assert.deepEqual(info.references, [...refs].sort());
    assert.equal(info.deriver, deriver);
    const file = await c.bytes(`/${name}/${info.url}`);
    assert.equal(info.fileHash, sha256Nix32(file));
    assert.equal(info.fileSize, file.length);
    assert.equal(info.url, `nar/${info.fileHash!.slice('sha256:'.length)}.nar.zst`);
    assert.ok(zstdDecompressSync(file, up.nar.length).equals(up.nar), 'the served .nar.zst decompresses to the pushed NAR');
    // HEAD on the NAR gives the same length without a body.
    const head = await c.get(`/${name}/${info.url}`, { method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal(head.headers.get('content-length'), String(file.length));
    assert.equal(head.headers.get('content-encoding'), null, 'a compressed NAR must never carry Content-Encoding');
  });

  await t.test("the narinfo is signed with the cache's key, as published by cache-config", async () => {
    const name = await newCache();
    const up = await nixUpload(await sampleNar(), { references: [randomStorePath('dep').baseName] });
    await c.push(name, up);
    const key = PublicKey.parse((await c.config(name)).public_key);
    const info = await c.narInfo(name, up.storePath.hash);
    const good = verifying(info, key);
    assert.equal(good.length, 1, `exactly one Sig from ${key.name}: ${info.sigs.join(' | ')}`);
    // A tampered NarSize no longer verifies: the signature pins the NAR.
    assert.equal(verifying({ ...info, narSize: info.narSize + 1 }, key).length, 0);
  });

  await t.test('HEAD on the nix-copy upload name answers 200 (so Nix skips re-uploading) and the decompressed <narhash>.nar route serves the NAR', async () => {
    const name = await newCache();
    const up = await nixUpload(await sampleNar(undefined, 150_000), { compression: 'xz' });
    await c.push(name, up);
    const uploaded = await c.get(`/${name}/nar/${up.fileName}`, { method: 'HEAD' });
    assert.equal(uploaded.status, 200);
    const narHash = sha256Nix32(up.nar).slice('sha256:'.length);
    const head = await c.get(`/${name}/nar/${narHash}.nar`, { method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal(head.headers.get('content-length'), String(up.nar.length));
    const nar = await c.bytes(`/${name}/nar/${narHash}.nar`);
    assert.ok(nar.equals(up.nar), 'GET <narhash>.nar returns the NAR byte for byte');
    const missing = await c.get(`/${name}/nar/${sha256Nix32(Buffer.from('x')).slice(7)}.nar`, { method: 'HEAD' });
    assert.equal(missing.status, 404);
  });

  await t.test('the .ls listing equals listNar of the pushed NAR', async () => {
    const name = await newCache();
    const up = await nixUpload(await sampleNar(undefined, 70_000));
    await c.push(name, up);
    const r = await c.get(`/${name}/${up.storePath.hash}.ls`);
    assert.equal(r.status, 200);
    assert.match(r.headers.get('content-type') ?? '', /^application\/json/);
    assert.deepEqual(await r.json(), await listNar(Readable.from([up.nar])));
    assert.equal((await c.get(`/${name}/${randomStorePath().hash}.ls`)).status, 404);
  });

  await t.test('client-supplied Sig lines are kept and served next to the cache signature', async () => {
    const name = await newCache();
    const clientKey = SigningKey.generate('client-key-1');
    const up = await nixUpload(await sampleNar());
    const fp = narFingerprint(up.narInfo.storePath, up.narInfo.narHash, up.narInfo.narSize, up.narInfo.references);
    const clientSig = clientKey.sign(fp);
    await c.push(name, up, narInfoText(up.narInfo, { sigs: [clientSig] }));
    const info = await c.narInfo(name, up.storePath.hash);
    assert.ok(info.sigs.includes(clientSig), `client Sig served: ${info.sigs.join(' | ')}`);
    assert.deepEqual(verifying(info, clientKey.publicKey()), [clientSig]);
    assert.equal(verifying(info, PublicKey.parse((await c.config(name)).public_key)).length, 1);
  });

  await t.test("re-PUT of a narinfo (nix store sign) replaces the client Sigs and never duplicates the cache's own Sig", async () => {
    const name = await newCache();
    const cacheKey = PublicKey.parse((await c.config(name)).public_key);
    const [a, b] = [SigningKey.generate('signer-a-1'), SigningKey.generate('signer-b-1')];
    const up = await nixUpload(await sampleNar());
    const fp = narFingerprint(up.narInfo.storePath, up.narInfo.narHash, up.narInfo.narSize, up.narInfo.references);
    await c.push(name, up, narInfoText(up.narInfo, { sigs: [a.sign(fp)] }));

    // `nix store sign`: GET the narinfo as served, add a Sig line, PUT it back.
    const served = await (await c.get(`/${name}/${up.storePath.hash}.narinfo`)).text();
    await c.putNarInfo(name, up.storePath.hash, `${served}Sig: ${b.sign(fp)}\n`);
    let info = await c.narInfo(name, up.storePath.hash);
    assert.equal(info.sigs.filter((s) => s.startsWith(`${cacheKey.name}:`)).length, 1, `own Sig once: ${info.sigs.join(' | ')}`);
    assert.equal(verifying(info, cacheKey).length, 1);
    assert.equal(verifying(info, a.publicKey()).length, 1);
    assert.equal(verifying(info, b.publicKey()).length, 1);
    assert.equal(info.sigs.length, 3);

    // A re-PUT carrying only b's signature drops a's: the pushed Sig lines replace the old ones.
    await c.putNarInfo(name, up.storePath.hash, narInfoText(info, { sigs: [b.sign(fp)] }));
    info = await c.narInfo(name, up.storePath.hash);
    assert.equal(verifying(info, a.publicKey()).length, 0);
    assert.equal(verifying(info, b.publicKey()).length, 1);
    assert.equal(verifying(info, cacheKey).length, 1);
    assert.equal(info.sigs.length, 2);
  });

  await t.test('after regenerating the key pair, narinfos are signed with the new key only', async () => {
    const name = await newCache();
    const up = await nixUpload(await sampleNar());
    await c.push(name, up);
    const oldKey = PublicKey.parse((await c.config(name)).public_key);
    assert.equal(verifying(await c.narInfo(name, up.storePath.hash), oldKey).length, 1);
    const r = await c.json('PATCH', `/_api/v1/cache-config/${name}`, { regenerate_keypair: true });
    assert.equal(r.status, 200);
    const patched = (await r.json()) as CacheJson;
    assert.notEqual(patched.public_key, oldKey.toString());
    const newKey = PublicKey.parse(patched.public_key);
    assert.equal(newKey.name, oldKey.name.replace(/-1$/, '-2'), 'the new key gets the next name so clients can trust both');
    assert.equal((await c.config(name)).public_key, patched.public_key);
    const info = await c.narInfo(name, up.storePath.hash);
    assert.equal(verifying(info, newKey).length, 1, `signed by ${newKey.name}: ${info.sigs.join(' | ')}`);
    assert.equal(verifying(info, oldKey).length, 0, 'the old key no longer signs');
  });

  await t.test('the same NAR pushed to two caches is stored once (one nars row, no new chunks)', async () => {
    const [first, second] = [await newCache(), await newCache()];
    const nar = await sampleNar(undefined, 600_000);
    const up1 = await nixUpload(nar, { compression: 'zstd' });
    await c.push(first, up1);
    const [nars, chunks, narChunks] = [await count(server, 'nars'), await count(server, 'chunks'), await count(server, 'nar_chunks')];
    const up2 = await nixUpload(nar, { compression: 'xz', storePath: up1.storePath });
    await c.push(second, up2);
    assert.equal(await count(server, 'nars'), nars, 'no second nars row');
    assert.equal(await count(server, 'chunks'), chunks, 'no new chunk');
    assert.equal(await count(server, 'nar_chunks'), narChunks, 'no second chunk list');
    const rows = await server.services.kysely.selectFrom('nars').selectAll().where('nar_hash', '=', sha256Nix32(nar)).execute();
    assert.equal(rows.length, 1);
    const [i1, i2] = [await c.narInfo(first, up1.storePath.hash), await c.narInfo(second, up2.storePath.hash)];
    assert.equal(i1.url, i2.url);
    assert.ok((await c.bytes(`/${first}/${i1.url}`)).equals(await c.bytes(`/${second}/${i2.url}`)));
  });

  await t.test('a path is visible only in the cache it was pushed to', async () => {
    const [a, b] = [await newCache(), await newCache()];
    const up = await nixUpload(await sampleNar());
    await c.push(a, up);
    assert.equal((await c.get(`/${b}/${up.storePath.hash}.narinfo`)).status, 404);
    const info = await c.narInfo(a, up.storePath.hash);
    assert.equal((await c.get(`/${b}/${info.url}`, { method: 'HEAD' })).status, 404);
  });

  await t.test('cache-config: create 201, duplicate 409, GET shows name:base64 public key, PATCH changes only given fields, DELETE 204 then 404', async () => {
    const name = `crud-${Date.now()}`;
    const created = await c.json('POST', `/_api/v1/cache-config/${name}`, { is_public: false, priority: 50 });
    assert.equal(created.status, 201);
    const body = (await created.json()) as CacheJson;
    assert.equal(body.name, name);
    assert.equal(body.priority, 50);
    assert.match(body.public_key, new RegExp(`^loft-${name}-1:[A-Za-z0-9+/]{43}=$`));
    assert.equal(PublicKey.parse(body.public_key).toString(), body.public_key);
    assert.equal(body.url, `${server.url}/${name}`);

    const dup = await c.json('POST', `/_api/v1/cache-config/${name}`, {});
    assert.equal(dup.status, 409);
    assert.match(((await dup.json()) as { message: string }).message, /already exists/);

    const got = await c.config(name);
    assert.deepEqual(got, body);

    const patched = await c.json('PATCH', `/_api/v1/cache-config/${name}`, { priority: 7 });
    assert.equal(patched.status, 200);
    const after = (await patched.json()) as CacheJson;
    assert.deepEqual(after, { ...body, priority: 7 });
    const patched2 = await c.json('PATCH', `/_api/v1/cache-config/${name}`, { is_public: true, retention_period: 3600 });
    assert.deepEqual(await patched2.json(), { ...body, priority: 7, is_public: true, retention_period: 3600 });
    const empty = await c.json('PATCH', `/_api/v1/cache-config/${name}`, {});
    assert.equal(empty.status, 400);
    const unknown = await c.json('PATCH', `/_api/v1/cache-config/${name}`, { colour: 'red' });
    assert.equal(unknown.status, 400);
    assert.deepEqual((await c.config(name)).priority, 7);

    const del = await c.get(`/_api/v1/cache-config/${name}`, { method: 'DELETE' });
    assert.equal(del.status, 204);
    assert.equal((await c.get(`/_api/v1/cache-config/${name}`)).status, 404);
    assert.equal((await c.get(`/${name}/nix-cache-info`)).status, 404);
    assert.equal((await c.get(`/_api/v1/cache-config/${name}`, { method: 'DELETE' })).status, 404);
  });

  await t.test('creating a cache with an invalid name is refused with 400 saying the name is invalid (even for an admin)', async () => {
    for (const bad of ['-bad', '.hidden', 'a'.repeat(51)]) {
      const r = await c.json('POST', `/_api/v1/cache-config/${bad}`, {});
      const text = await r.text();
      assert.equal(r.status, 400, `POST cache-config/${bad}: ${r.status} ${text}`);
      assert.match((JSON.parse(text) as { message: string }).message, /invalid cache name/);
    }
    const names = ((await (await c.get('/_api/v1/caches')).json()) as { caches: CacheJson[] }).caches.map((x) => x.name);
    assert.ok(!names.some((x) => x === '-bad' || x === '.hidden'));
  });

  await t.test('GET /_api/v1/caches lists every cache to an admin and only public ones to anonymous callers', async () => {
    const pub = await newCache({ is_public: true });
    const priv = await newCache();
    const all = (await (await c.get('/_api/v1/caches')).json()) as { caches: CacheJson[] };
    const names = all.caches.map((x) => x.name);
    assert.ok(names.includes(pub) && names.includes(priv));
    const entry = all.caches.find((x) => x.name === pub)!;
    assert.equal(entry.url, `${server.url}/${pub}`);
    assert.equal(entry.public_key, (await c.config(pub)).public_key);
    const anon = await server.fetch('/_api/v1/caches');
    assert.equal(anon.status, 200);
    const anonNames = ((await anon.json()) as { caches: CacheJson[] }).caches.map((x) => x.name);
    assert.ok(anonNames.includes(pub));
    assert.ok(!anonNames.includes(priv), 'a private cache is not listed to anonymous callers');
  });

  await t.test('a public cache serves narinfo and NAR without a token; a private one answers 401', async () => {
    const pub = await newCache({ is_public: true });
    const priv = await newCache();
    const up = await nixUpload(await sampleNar());
    await c.push(pub, up);
    await c.push(priv, up);
    const r = await server.fetch(`/${pub}/${up.storePath.hash}.narinfo`);
    assert.equal(r.status, 200);
    const info = parseNarInfo(await r.text());
    assert.equal((await server.fetch(`/${pub}/${info.url}`)).status, 200);
    assert.equal((await server.fetch(`/${priv}/${up.storePath.hash}.narinfo`)).status, 401);
    assert.equal((await server.fetch(`/${priv}/nix-cache-info`)).status, 401);
  });

  await t.test('/v1/healthz answers 200 with status ok when database and storage answer', async () => {
    const r = await server.fetch('/v1/healthz');
    assert.equal(r.status, 200);
    assert.deepEqual(await r.json(), { status: 'ok', database: 'ok', storage: 'ok' });
  });

  await t.test('the landing page is HTML listing public caches with their keys, not private ones', async () => {
    const pub = await newCache({ is_public: true });
    const priv = await newCache();
    const r = await server.fetch('/');
    assert.equal(r.status, 200);
    assert.match(r.headers.get('content-type') ?? '', /^text\/html/);
    const html = await r.text();
    assert.match(html, /^<!doctype html>/i);
    assert.ok(html.includes(`<td>${pub}</td>`));
    assert.ok(html.includes(`<code>${(await c.config(pub)).public_key}</code>`), 'the public key is shown');
    assert.ok(!html.includes(`<td>${priv}</td>`), 'private caches are not advertised');
  });
}

for (const db of DB_KINDS) {
  test(`the binary-cache protocol and cache API behave as Nix expects (${db})`, { timeout: 180_000 }, async (t) => {
    if (db === 'postgres' && !skipUnless(t, await postgresUnavailable())) return;
    const server = await startTestServer({ db });
    t.after(() => server.close());
    await protocolCases(t, server);
  });
}
