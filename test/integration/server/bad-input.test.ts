// Issue 2, "Bad input must get a clear error and lose nothing", for uploads
// made the way `nix copy --to http://…` makes them (PUT nar/<filehash>.nar.*,
// then PUT <hash>.narinfo): every malformed upload is refused with a 4xx whose
// message says what was wrong, nothing becomes visible, and the server keeps
// serving. Runs against a real server on SQLite and PostgreSQL.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { DB_KINDS } from '../../helpers/databases.ts';
import { postgresUnavailable, skipUnless } from '../../helpers/env.ts';
import { startTestServer } from '../../helpers/server.ts';
import {
  narInfoText,
  nix32Of,
  nixUpload,
  randomStorePath,
  rawRequest,
  sampleNar,
  sha256Nix32,
  type NixUpload,
} from '../../helpers/nar.ts';
import { Harness, IDLE_MS, INVALID_NARS, METADATA_LIMIT, refused } from './bad-input-harness.ts';

async function badInputCases(t: TestContext, h: Harness): Promise<void> {
  const server = h.server;

  // ---- nix copy --to http://… style uploads ----

  await t.test('a narinfo whose NarHash differs from the uploaded NAR is refused and the path stays invisible', async () => {
    const c = await h.cache();
    const up = await nixUpload(await sampleNar());
    assert.equal((await h.putNar(c.name, up.fileName, up.file)).status, 201);
    await h.settle();
    const other = sha256Nix32(Buffer.from('something else'));
    await refused(await h.putNarInfo(c.name, up.storePath.hash, narInfoText(up.narInfo, { narHash: other })), 400, /NarHash\/NarSize mismatch/);
    await h.nothingVisible(c, up.storePath.hash);
    await h.stillServing(c.name);
  });

  await t.test('a narinfo whose NarSize differs from the uploaded NAR is refused and the path stays invisible', async () => {
    const c = await h.cache();
    const up = await nixUpload(await sampleNar());
    assert.equal((await h.putNar(c.name, up.fileName, up.file)).status, 201);
    await h.settle();
    const text = narInfoText(up.narInfo, { narSize: up.nar.length + 8 });
    await refused(await h.putNarInfo(c.name, up.storePath.hash, text), 400, new RegExp(`mismatch.*${up.nar.length + 8}`));
    await h.nothingVisible(c, up.storePath.hash);
    await h.stillServing(c.name);
  });

  await t.test('a NAR file whose name is not the hash of its body is refused and not recorded', async () => {
    const c = await h.cache();
    const up = await nixUpload(await sampleNar());
    const wrongName = `${nix32Of(Buffer.from('not the body'))}.nar.zst`;
    await refused(await h.putNar(c.name, wrongName, up.file), 400, /file hash mismatch/);
    const head = await server.fetch(`/${c.name}/nar/${wrongName}`, { method: 'HEAD', token: h.token });
    assert.equal(head.status, 404, 'HEAD of the refused file must not make Nix skip its upload');
    // Its narinfo cannot complete the path either.
    const text = narInfoText(up.narInfo, { url: `nar/${wrongName}` });
    await refused(await h.putNarInfo(c.name, up.storePath.hash, text), 400, /was not uploaded/);
    await h.nothingVisible(c, up.storePath.hash, up.narInfo.narHash, { chunkedFirst: true });
    await h.stillServing(c.name);
  });

  for (const end of ['half', 'destroy'] as const) {
    await t.test(`a truncated NAR upload (client ${end === 'half' ? 'half-closes' : 'drops the connection'} before Content-Length bytes) is refused and stores nothing`, async () => {
      const c = await h.cache();
      const up = await nixUpload(await sampleNar(undefined, 200_000), { compression: 'none' });
      const res = await rawRequest(server.url, {
        method: 'PUT',
        path: `/${c.name}/nar/${up.fileName}`,
        headers: { authorization: `Bearer ${h.token}`, 'content-type': 'application/x-nix-nar', 'content-length': up.file.length },
        body: up.file.subarray(0, up.file.length - 1000),
        end,
      });
      assert.ok(res.status === undefined || res.status === 400, `a truncated upload must not succeed (got ${res.status} ${res.body})`);
      await h.nothingLeft(); // waits for the server to finish with the aborted request
      const head = await server.fetch(`/${c.name}/nar/${up.fileName}`, { method: 'HEAD', token: h.token });
      assert.equal(head.status, 404);
      await refused(await h.putNarInfo(c.name, up.storePath.hash, narInfoText(up.narInfo)), 400, /was not uploaded/);
      await h.nothingVisible(c, up.storePath.hash, up.narInfo.narHash);
      await h.stillServing(c.name);
    });
  }

  await t.test('a NAR upload that stops short of its Content-Length is answered 400 once the body stalls', async () => {
    const c = await h.cache();
    const up = await nixUpload(await sampleNar(), { compression: 'zstd' });
    const res = await rawRequest(server.url, {
      method: 'PUT',
      path: `/${c.name}/nar/${up.fileName}`,
      headers: { authorization: `Bearer ${h.token}`, 'content-length': up.file.length + 100 },
      body: up.file,
      end: 'open',
      timeoutMs: 30_000,
    });
    t.diagnostic(`answered after ${res.ms} ms (body idle timeout ${IDLE_MS} ms)`);
    assert.equal(res.status, 400, `a stalled, short body must be answered 400, not a dropped connection (got ${res.status ?? 'no response'})`);
    assert.match(JSON.parse(res.body).message, /stalled|ended after/);
    await h.nothingVisible(c, up.storePath.hash, up.narInfo.narHash);
    await h.stillServing(c.name);
  });

  await t.test("Nix 2.8's body-less retried PUT is refused within seconds and stores nothing", async () => {
    const c = await h.cache();
    const up = await nixUpload(await sampleNar(), { compression: 'xz' });
    const res = await rawRequest(server.url, {
      method: 'PUT',
      path: `/${c.name}/nar/${up.fileName}`,
      headers: {
        authorization: `Bearer ${h.token}`,
        'content-type': 'application/x-nix-nar',
        'content-length': up.file.length,
        expect: '100-continue',
        'user-agent': 'curl/7.85.0 Nix/2.8.0',
      },
      end: 'open',
      timeoutMs: 30_000,
    });
    t.diagnostic(`answered after ${res.ms} ms (body idle timeout ${IDLE_MS} ms)`);
    const head = await server.fetch(`/${c.name}/nar/${up.fileName}`, { method: 'HEAD', token: h.token });
    assert.equal(head.status, 404, 'nothing may be recorded for a body-less PUT');
    await h.nothingVisible(c, up.storePath.hash, up.narInfo.narHash);
    // Nix 2.8 does not retry a 4xx; a dropped connection makes it retry (body-less again) 5 times.
    assert.equal(res.status, 400, `a body-less PUT must be answered 400 (got ${res.status ?? 'no response, connection closed'})`);
    assert.match(JSON.parse(res.body).message, /stalled.*0 bytes|ended after 0/);
    await h.stillServing(c.name);
  });

  for (const [what, bytes, message] of INVALID_NARS) {
    await t.test(`an invalid NAR (${what}) uploaded by nix copy is refused and stores nothing`, async () => {
      const c = await h.cache();
      const up = await nixUpload(Buffer.from(bytes), { compression: 'zstd' });
      await refused(await h.putNar(c.name, up.fileName, up.file), 400, message);
      await refused(await h.putNarInfo(c.name, up.storePath.hash, narInfoText(up.narInfo)), 400, /was not uploaded/);
      await h.nothingVisible(c, up.storePath.hash, up.narInfo.narHash);
      await h.stillServing(c.name);
    });
  }

  const corruptions: [string, () => Promise<{ up: NixUpload; bytes: Buffer }>, RegExp][] = [
    [
      'a zstd stream cut in half',
      async () => {
        const up = await nixUpload(await sampleNar(undefined, 100_000), { compression: 'zstd' });
        return { up, bytes: up.file.subarray(0, up.file.length >> 1) };
      },
      /cannot decompress .* as zstd/,
    ],
    [
      'bytes that are not a zstd frame',
      async () => {
        const up = await nixUpload(await sampleNar(), { compression: 'zstd' });
        return { up, bytes: Buffer.concat([Buffer.from('not zstd at all'), up.file]) };
      },
      /cannot decompress .* as zstd/,
    ],
    [
      'an xz stream with a flipped byte',
      async () => {
        const up = await nixUpload(await sampleNar(undefined, 100_000), { compression: 'xz' });
        const bytes = Buffer.from(up.file);
        bytes[bytes.length >> 1] ^= 0xff;
        return { up, bytes };
      },
      /cannot decompress .* as xz/,
    ],
    [
      'an xz stream cut short',
      async () => {
        const up = await nixUpload(await sampleNar(undefined, 100_000), { compression: 'xz' });
        return { up, bytes: up.file.subarray(0, up.file.length - 40) };
      },
      /cannot decompress .* as xz/,
    ],
  ];
  for (const [what, make, message] of corruptions) {
    await t.test(`a corrupt compressed NAR (${what}) is refused with a decompression error and stores nothing`, async () => {
      const c = await h.cache();
      const { up, bytes } = await make();
      const ext = up.compression === 'xz' ? '.xz' : '.zst';
      const fileName = `${nix32Of(bytes)}.nar${ext}`; // named after the bytes sent: only the codec can object
      await refused(await h.putNar(c.name, fileName, bytes), 400, message);
      const head = await server.fetch(`/${c.name}/nar/${fileName}`, { method: 'HEAD', token: h.token });
      assert.equal(head.status, 404);
      await h.nothingVisible(c, up.storePath.hash, up.narInfo.narHash);
      await h.stillServing(c.name);
    });
  }

  await t.test('a narinfo whose NAR was never uploaded is refused and the path stays invisible', async () => {
    const c = await h.cache();
    const up = await nixUpload(await sampleNar());
    await refused(await h.putNarInfo(c.name, up.storePath.hash, narInfoText(up.narInfo)), 400, /refers to nar\/.*which was not uploaded/);
    await h.nothingVisible(c, up.storePath.hash, up.narInfo.narHash);
    await h.stillServing(c.name);
  });

  await t.test('a narinfo for a NAR uploaded to another cache is refused (uploads are per cache)', async () => {
    const c = await h.cache();
    const other = await h.cache();
    const up = await nixUpload(await sampleNar());
    assert.equal((await h.putNar(other.name, up.fileName, up.file)).status, 201);
    await h.settle();
    await refused(await h.putNarInfo(c.name, up.storePath.hash, narInfoText(up.narInfo)), 400, /was not uploaded to cache/);
    await h.nothingVisible(c, up.storePath.hash);
    await h.stillServing(c.name);
  });

  await t.test('a narinfo whose StorePath hash differs from the URL hash is refused', async () => {
    const c = await h.cache();
    const up = await nixUpload(await sampleNar());
    assert.equal((await h.putNar(c.name, up.fileName, up.file)).status, 201);
    await h.settle();
    const urlHash = randomStorePath().hash;
    await refused(await h.putNarInfo(c.name, urlHash, narInfoText(up.narInfo)), 400, /does not match the hash/);
    await h.nothingVisible(c, urlHash);
    await h.nothingVisible(c, up.storePath.hash);
    await h.stillServing(c.name);
  });

  await t.test('uploads to an unknown cache are answered 404 naming the cache', async () => {
    await h.settle();
    const up = await nixUpload(await sampleNar());
    await refused(await h.putNar('no-such-cache', up.fileName, up.file), 404, /no such cache 'no-such-cache'/);
    await refused(await h.putNarInfo('no-such-cache', up.storePath.hash, narInfoText(up.narInfo)), 404, /no such cache/);
    const nars = await server.services.kysely.selectFrom('nars').select('id').where('nar_hash', '=', up.narInfo.narHash).execute();
    assert.equal(nars.length, 0);
    await h.nothingLeft();
    await h.stillServing((await h.cache()).name);
  });

  await t.test('an invalid store path hash in the URL (bad character, wrong length) is refused with 400', async () => {
    const c = await h.cache();
    const up = await nixUpload(await sampleNar());
    const good = up.storePath.hash;
    for (const bad of [`e${good.slice(1)}`, good.slice(1), `${good}a`, `${good.slice(0, 31)}U`]) {
      await refused(await h.putNarInfo(c.name, bad, narInfoText(up.narInfo)), 400, /invalid store path hash/);
      await refused(await server.fetch(`/${c.name}/${bad}.narinfo`, { token: h.token }), 400, /invalid store path hash/);
    }
    await h.nothingVisible(c, good);
    await h.stillServing(c.name);
  });

  await t.test('a narinfo with an invalid store path name is refused naming the problem', async () => {
    const c = await h.cache();
    const sp = randomStorePath();
    const up = await nixUpload(await sampleNar(), { storePath: sp });
    assert.equal((await h.putNar(c.name, up.fileName, up.file)).status, 201);
    await h.settle();
    for (const [name, message] of [
      ['has space', /illegal character ' '/],
      ['.hidden', /must not start with '\.'/],
      ['x'.repeat(212), /longer than 211/],
    ] as const) {
      const text = narInfoText(up.narInfo, { storePath: `/nix/store/${sp.hash}-${name}` });
      await refused(await h.putNarInfo(c.name, sp.hash, text), 400, message);
    }
    // A reference with a bad name is just as invalid.
    const badRef = narInfoText(up.narInfo, { references: [`${sp.hash}-bad/name`] });
    await refused(await h.putNarInfo(c.name, sp.hash, badRef), 400, /References/);
    await h.nothingVisible(c, sp.hash);
    await h.stillServing(c.name);
  });

  await t.test('an unsupported compression (.nar.bz2, .nar.gz) is refused with a message naming it', async () => {
    const c = await h.cache();
    const up = await nixUpload(await sampleNar(), { compression: 'none' });
    const hash = nix32Of(up.file);
    await refused(await h.putNar(c.name, `${hash}.nar.bz2`, up.file), 400, /bzip2.*not supported/);
    await refused(await h.putNar(c.name, `${hash}.nar.gz`, up.file), 400, /unsupported NAR file extension/);
    await refused(await h.putNar(c.name, `${hash}.tar`, up.file), 400, /invalid NAR file name/);
    await h.nothingVisible(c, up.storePath.hash, up.narInfo.narHash);
    await h.stillServing(c.name);
  });

  await t.test('a narinfo larger than max_metadata_bytes is refused with 413', async () => {
    const c = await h.cache();
    const up = await nixUpload(await sampleNar());
    assert.equal((await h.putNar(c.name, up.fileName, up.file)).status, 201);
    await h.settle();
    const sigs = Array.from({ length: 200 }, (_, i) => `key-${i}:${Buffer.alloc(64, i).toString('base64')}`);
    const text = narInfoText(up.narInfo, { sigs });
    assert.ok(text.length > METADATA_LIMIT);
    await refused(await h.putNarInfo(c.name, up.storePath.hash, text), 413, new RegExp(`exceeds the ${METADATA_LIMIT}-byte limit`));
    await h.nothingVisible(c, up.storePath.hash);
    await h.stillServing(c.name);
  });

  await t.test('an empty narinfo and a malformed narinfo are refused saying why', async () => {
    const c = await h.cache();
    const sp = randomStorePath();
    await refused(await h.putNarInfo(c.name, sp.hash, ''), 400, /empty narinfo/);
    await refused(await h.putNarInfo(c.name, sp.hash, 'StorePath: /nix/store/x\ngarbage\n'), 400, /invalid narinfo/);
    await refused(await h.putNarInfo(c.name, sp.hash, `StorePath: ${sp.path}\nURL: nar/x.nar\n`), 400, /missing required field 'NarHash'/);
    await h.nothingVisible(c, sp.hash);
    await h.stillServing(c.name);
  });

}

for (const db of DB_KINDS) {
  test(`bad nix-copy uploads get a clear 4xx, store nothing, and the server keeps serving (${db})`, { timeout: 180_000 }, async (t) => {
    if (db === 'postgres' && !skipUnless(t, await postgresUnavailable())) return;
    const server = await startTestServer({ db, toml: { body_idle_timeout_ms: IDLE_MS, max_metadata_bytes: METADATA_LIMIT } });
    t.after(() => server.close());
    await badInputCases(t, new Harness(server));
  });
}

