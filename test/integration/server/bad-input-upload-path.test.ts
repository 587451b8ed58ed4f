// Issue 2, "Bad input must get a clear error and lose nothing", for Loft's own
// PUT /_api/v1/upload-path (metadata in X-Loft-Nar-Info or as a body preamble)
// and get-missing-paths: refused with a clear 4xx, nothing stored, the server
// keeps serving; and the valid forms are served back byte for byte.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { DB_KINDS } from '../../helpers/databases.ts';
import { postgresUnavailable, skipUnless } from '../../helpers/env.ts';
import { startTestServer } from '../../helpers/server.ts';
import { randomStorePath, rawRequest, sampleNar, sha256Nix32, uploadPathMeta } from '../../helpers/nar.ts';
import { Harness, IDLE_MS, INVALID_NARS, METADATA_LIMIT, refused } from './bad-input-harness.ts';
import { zstdDecompressSync } from '../../../src/compression/zstd.ts';
import { parseNarInfo } from '../../../src/nix/narinfo.ts';

async function uploadPathCases(t: TestContext, h: Harness): Promise<void> {
  const server = h.server;

  // ---- Loft's PUT /_api/v1/upload-path ----

  const metaHeader = (m: Record<string, unknown>) => ({ 'x-loft-nar-info': JSON.stringify(m) });

  await t.test('upload-path with a wrong nar_hash is refused; nothing is visible and its chunks are left only for GC', async () => {
    const c = await h.cache();
    const n = await sampleNar();
    const sp = randomStorePath();
    const meta = { ...uploadPathMeta(c.name, sp.path, n), nar_hash: sha256Nix32(Buffer.from('other')) };
    await refused(await h.uploadPath(metaHeader(meta), n), 400, /NarHash mismatch/);
    await h.nothingVisible(c, sp.hash, sha256Nix32(n), { chunkedFirst: true });
    await h.stillServing(c.name);
  });

  await t.test('upload-path with a wrong nar_size is refused; nothing is visible and its chunks are left only for GC', async () => {
    const c = await h.cache();
    const n = await sampleNar();
    const sp = randomStorePath();
    const meta = { ...uploadPathMeta(c.name, sp.path, n), nar_size: n.length - 8 };
    await refused(await h.uploadPath(metaHeader(meta), n), 400, /NarSize mismatch/);
    await h.nothingVisible(c, sp.hash, sha256Nix32(n), { chunkedFirst: true });
    await h.stillServing(c.name);
  });

  await t.test('upload-path with metadata that is not JSON, or not the right shape, is refused saying so', async () => {
    const c = await h.cache();
    const n = await sampleNar();
    const sp = randomStorePath();
    await refused(await h.uploadPath({ 'x-loft-nar-info': '{"cache": ' }, n), 400, /not valid JSON/);
    await refused(await h.uploadPath({ 'x-loft-nar-info': '[1]' }, n), 400, /path metadata/);
    const noSize = { ...uploadPathMeta(c.name, sp.path, n), nar_size: '12' };
    await refused(await h.uploadPath(metaHeader(noSize), n), 400, /'nar_size' must be a number/);
    const badPath = uploadPathMeta(c.name, '/usr/bin/env', n);
    await refused(await h.uploadPath(metaHeader(badPath), n), 400, /not in store directory/);
    await h.nothingVisible(c, sp.hash, sha256Nix32(n));
    await h.stillServing(c.name);
  });

  await t.test('upload-path without metadata is refused naming the missing header', async () => {
    const c = await h.cache();
    const n = await sampleNar();
    await refused(await h.uploadPath({}, n), 400, /missing X-Loft-Nar-Info/);
    await h.nothingVisible(c, randomStorePath().hash, sha256Nix32(n));
    await h.stillServing(c.name);
  });

  for (const [what, bytes, message] of INVALID_NARS) {
    await t.test(`upload-path with an invalid NAR (${what}) is refused and stores nothing`, async () => {
      const c = await h.cache();
      const sp = randomStorePath();
      await refused(await h.uploadPath(metaHeader(uploadPathMeta(c.name, sp.path, bytes)), bytes), 400, message);
      await h.nothingVisible(c, sp.hash, sha256Nix32(bytes));
      await h.stillServing(c.name);
    });
  }

  await t.test('upload-path whose preamble size exceeds the body is refused saying the body ended inside it', async () => {
    const c = await h.cache();
    const n = await sampleNar();
    const sp = randomStorePath();
    const meta = Buffer.from(JSON.stringify(uploadPathMeta(c.name, sp.path, n)));
    const res = await h.uploadPath({ 'x-loft-nar-info-preamble-size': String(meta.length + 100) }, meta.subarray(0, 50));
    await refused(res, 400, new RegExp(`body ended inside the ${meta.length + 100}-byte metadata preamble`));
    await refused(await h.uploadPath({ 'x-loft-nar-info-preamble-size': 'ten' }, meta), 400, /Preamble-Size must be a positive integer/);
    await h.nothingVisible(c, sp.hash, sha256Nix32(n));
    await h.stillServing(c.name);
  });

  await t.test('upload-path metadata larger than max_metadata_bytes is refused with 413 (preamble form)', async () => {
    const c = await h.cache();
    const n = await sampleNar();
    const sp = randomStorePath();
    const res = await h.uploadPath({ 'x-loft-nar-info-preamble-size': String(METADATA_LIMIT + 1) }, n);
    await refused(res, 413, /exceeds the \d+-byte limit/);
    await h.nothingVisible(c, sp.hash, sha256Nix32(n));
    await h.stillServing(c.name);
  });

  await t.test('upload-path metadata larger than max_metadata_bytes is refused with 413 (header form)', async () => {
    const c = await h.cache();
    const n = await sampleNar();
    const sp = randomStorePath();
    // Valid, signed-looking metadata that is simply too big: 120 signatures ≈ 12 KB (< Node's 16 KB header cap).
    const sigs = Array.from({ length: 120 }, (_, i) => `key-${i}:${Buffer.alloc(64, i).toString('base64')}`);
    const header = JSON.stringify(uploadPathMeta(c.name, sp.path, n, { sigs }));
    assert.ok(header.length > METADATA_LIMIT && header.length < 15_000);
    await refused(await h.uploadPath({ 'x-loft-nar-info': header }, n), 413, /exceeds the \d+-byte limit/);
    await h.nothingVisible(c, sp.hash, sha256Nix32(n));
    await h.stillServing(c.name);
  });

  await t.test('a truncated upload-path body (client closes early) stores nothing', async () => {
    const c = await h.cache();
    const n = await sampleNar(undefined, 200_000);
    const sp = randomStorePath();
    const res = await rawRequest(server.url, {
      method: 'PUT',
      path: '/_api/v1/upload-path',
      headers: {
        authorization: `Bearer ${h.token}`,
        'content-type': 'application/octet-stream',
        'x-loft-nar-info': JSON.stringify(uploadPathMeta(c.name, sp.path, n)),
        'content-length': n.length,
      },
      body: n.subarray(0, n.length - 4096),
      end: 'half',
    });
    assert.ok(res.status === undefined || res.status === 400, `a truncated upload must not succeed (got ${res.status} ${res.body})`);
    await h.nothingVisible(c, sp.hash, sha256Nix32(n));
    await h.stillServing(c.name);
  });

  // ---- the valid upload-path forms, served afterwards ----

  for (const form of ['header', 'preamble'] as const) {
    await t.test(`a valid upload-path (${form} form) makes the path servable with the exact NAR`, async () => {
      const c = await h.cache();
      const n = await sampleNar(undefined, 300_000);
      const sp = randomStorePath('served');
      const meta = JSON.stringify(uploadPathMeta(c.name, sp.path, n));
      const res =
        form === 'header'
          ? await h.uploadPath({ 'x-loft-nar-info': meta }, n)
          : await h.uploadPath(
              { 'x-loft-nar-info-preamble-size': String(Buffer.byteLength(meta)) },
              Buffer.concat([Buffer.from(meta), n]),
            );
      const text = await res.text();
      assert.equal(res.status, 200, text);
      const result = JSON.parse(text) as { kind: string; nar_size: number };
      assert.equal(result.nar_size, n.length);
      assert.ok(result.kind === 'uploaded' || result.kind === 'deduplicated');
      const ni = await server.fetch(`/${c.name}/${sp.hash}.narinfo`, { token: h.token });
      assert.equal(ni.status, 200);
      const info = parseNarInfo(await ni.text());
      assert.equal(info.storePath, sp.path);
      assert.equal(info.narHash, sha256Nix32(n));
      const file = await server.fetch(`/${c.name}/${info.url}`, { token: h.token });
      assert.equal(file.status, 200);
      const bytes = Buffer.from(await file.arrayBuffer());
      assert.ok(zstdDecompressSync(bytes, n.length).equals(n), 'the served NAR must decompress to the uploaded NAR');
    });
  }

  await t.test('get-missing-paths with an invalid hash is refused with 400 naming it', async () => {
    const c = await h.cache();
    const good = randomStorePath().hash;
    const res = await server.fetch('/_api/v1/get-missing-paths', {
      method: 'POST',
      token: h.token,
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ cache: c.name, store_path_hashes: [good, 'eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee'] }),
    });
    await refused(res, 400, /invalid store path hash 'eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee'/);
    const ok = await server.fetch('/_api/v1/get-missing-paths', {
      method: 'POST',
      token: h.token,
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ cache: c.name, store_path_hashes: [good] }),
    });
    assert.equal(ok.status, 200);
    assert.deepEqual(await ok.json(), { missing_paths: [good] });
  });
}

for (const db of DB_KINDS) {
  test(`bad upload-path requests get a clear 4xx, store nothing, and the server keeps serving (${db})`, { timeout: 180_000 }, async (t) => {
    if (db === 'postgres' && !skipUnless(t, await postgresUnavailable())) return;
    const server = await startTestServer({ db, toml: { body_idle_timeout_ms: IDLE_MS, max_metadata_bytes: METADATA_LIMIT } });
    t.after(() => server.close());
    await uploadPathCases(t, new Harness(server));
  });
}

