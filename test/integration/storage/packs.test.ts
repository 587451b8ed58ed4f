// Pack files on both backends (SQLite + disk, PostgreSQL + S3): one pack per ingest, coalesced
// ranged reads, fail-closed reads of corrupt or truncated packs, racing pushes, compaction.
import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { deterministicBytes, makeNar, randomStorePath, sha256Nix32, uploadPathMeta, type Bytes } from '../../helpers/nar.ts';
import { startTestServer, type TestServer } from '../../helpers/server.ts';
import { listNar } from '../../../src/nix/nar/listing.ts';
import { parseNarInfo } from '../../../src/nix/narinfo.ts';
import { runGarbageCollection } from '../../../src/gc/run.ts';
import { findNarChunks } from '../../../src/db/repos/nars.ts';
import { chunksOf, commitBody, onEachDatabase, postChunks, postJson, recordsBody } from '../chunks/support.ts';

async function push(server: TestServer, nar: Bytes, cache = 'main') {
  const sp = randomStorePath('pack');
  const res = await server.fetch('/_api/v1/upload-path', {
    method: 'PUT',
    token: server.adminToken,
    headers: { 'content-type': 'application/octet-stream', 'x-loft-nar-info': JSON.stringify(uploadPathMeta(cache, sp.path, nar)) },
    body: nar,
  });
  assert.equal(res.status, 200, await res.text());
  const info = parseNarInfo(await (await server.fetch(`/${cache}/${sp.hash}.narinfo`, { token: server.adminToken })).text());
  return { sp, info, zst: `/${cache}/${info.url}`, plain: `/${cache}/nar/${sha256Nix32(nar).slice(7)}.nar`, ls: `/${cache}/${sp.hash}.ls` };
}

/** The pack and offset of each chunk of the NAR, in NAR order. */
async function layoutOf(server: TestServer, nar: Buffer) {
  const k = server.services.kysely;
  const row = await k.selectFrom('nars').selectAll().where('nar_hash', '=', sha256Nix32(nar)).executeTakeFirstOrThrow();
  const chunks = await findNarChunks(k, row.id);
  const packs = await k.selectFrom('packs').selectAll().execute();
  return { nar: row, chunks, keyOf: (id: number) => packs.find((p) => Number(p.id) === id)!.storage_key };
}

async function editPack(server: TestServer, key: string, edit: (bytes: Buffer) => Buffer) {
  const blobs = server.services.blobs;
  await blobs.put(key, edit(await blobs.getBuffer(key)));
}

/** Status and how the body ended: complete (its length) or cut short (-1 or fewer bytes than declared). */
async function download(server: TestServer, path: string) {
  const res = await server.fetch(path, { token: server.adminToken });
  if (res.status !== 200) return { status: res.status, complete: false, bytes: undefined };
  const declared = Number(res.headers.get('content-length'));
  const body = await res.arrayBuffer().then(
    (b) => Buffer.from(b),
    () => undefined,
  );
  return { status: 200, complete: body !== undefined && body.length === declared, bytes: body };
}

onEachDatabase('a pushed NAR is one pack, read back with one ranged read per 4 MiB', async (_t, server) => {
  await server.createCache('main');
  const nar = await makeNar({ data: deterministicBytes('pack-layout', 6_000_000), small: 'x' });
  const pushed = await push(server, nar);
  const { nar: row, chunks } = await layoutOf(server, nar);
  assert.ok(chunks.length > 40);
  assert.equal(new Set(chunks.map((c) => c.pack_id)).size, 1, 'every chunk in one pack');
  let offset = 0;
  for (const c of chunks) {
    assert.equal(c.pack_offset, offset, 'frames back to back in NAR order');
    offset += c.stored_size;
  }
  assert.equal(offset, row.file_size);

  const blobs = server.services.blobs;
  const get = blobs.get.bind(blobs);
  let gets = 0;
  blobs.get = (key, range) => {
    gets++;
    return get(key, range);
  };
  try {
    const zst = await download(server, pushed.zst);
    assert.ok(zst.complete);
    assert.equal(sha256Nix32(zst.bytes!), pushed.info.fileHash, 'the served file is what the narinfo says');
    assert.equal(gets, Math.ceil(row.file_size / (4 * 1024 * 1024)), `${chunks.length} chunks in ${gets} ranged reads`);
    const plain = await download(server, pushed.plain);
    assert.ok(plain.complete && plain.bytes!.equals(nar));
  } finally {
    blobs.get = get;
  }
  const ls = await server.fetch(pushed.ls, { token: server.adminToken });
  assert.deepEqual(await ls.json(), await listNar(Readable.from([nar])), 'the listing stored at ingest');
});

onEachDatabase('a corrupt or truncated pack fails closed on .nar.zst, .nar and .ls', async (_t, server) => {
  await server.createCache('main');
  const nar = await makeNar({ data: deterministicBytes('pack-corrupt', 9_000_000) });
  const pushed = await push(server, nar);
  const { chunks, keyOf } = await layoutOf(server, nar);
  const key = keyOf(chunks[0].pack_id);
  const pristine = await server.services.blobs.getBuffer(key);
  const restore = () => server.services.blobs.put(key, pristine);
  const expectBefore = async (what: string) => {
    for (const path of [pushed.zst, pushed.plain]) {
      const r = await download(server, path);
      assert.equal(r.status, 503, `${what}: ${path} answers 503 before any header`);
    }
  };
  const expectAfter = async (what: string) => {
    for (const path of [pushed.zst, pushed.plain]) {
      const r = await download(server, path);
      assert.equal(r.status, 200, `${what}: ${path}`);
      assert.equal(r.complete, false, `${what}: ${path} is cut short, never complete-looking`);
    }
  };

  await editPack(server, key, (b) => ((b[chunks[1].pack_offset + 7] ^= 0x40), b));
  await expectBefore('a flipped byte in the first range');
  // The listing was stored at ingest, so it does not depend on the pack…
  assert.equal((await server.fetch(pushed.ls, { token: server.adminToken })).status, 200);
  // …but a NAR without a stored listing (ingested before listings were stored) is parsed from the pack.
  const row = await server.services.kysely.selectFrom('nars').select('id').where('nar_hash', '=', sha256Nix32(nar)).executeTakeFirstOrThrow();
  await server.services.kysely.deleteFrom('nar_listings').where('nar_id', '=', row.id).execute();
  assert.equal((await server.fetch(pushed.ls, { token: server.adminToken })).status, 503);

  await restore();
  const last = chunks[chunks.length - 1];
  await editPack(server, key, (b) => ((b[last.pack_offset + 3] ^= 0x01), b));
  await expectAfter('a flipped byte in a later range');
  assert.equal((await server.fetch(pushed.ls, { token: server.adminToken })).status, 503);

  await restore();
  await editPack(server, key, (b) => b.subarray(0, b.length - 100));
  await expectAfter('a pack cut short');
  await editPack(server, key, (b) => b.subarray(0, chunks[0].stored_size - 1));
  await expectBefore('a pack cut inside its first frame');
  assert.equal((await server.fetch(pushed.ls, { token: server.adminToken })).status, 503);

  await restore();
  assert.ok((await download(server, pushed.plain)).bytes!.equals(nar), 'restored, it is served again');
});

onEachDatabase('racing pushes of one NAR record each chunk once; the loser’s copy is reclaimed by GC', async (_t, server) => {
  await server.createCache('main');
  const nar = await makeNar({ data: deterministicBytes('pack-race', 3_000_000) });
  const [a] = await Promise.all([push(server, nar), push(server, nar)]);
  const k = server.services.kysely;
  const count = async (t: 'chunks' | 'packs' | 'nars') => Number((await k.selectFrom(t).select(({ fn }) => fn.countAll().as('n')).executeTakeFirstOrThrow()).n);
  const { chunks } = await layoutOf(server, nar);
  assert.equal(await count('chunks'), new Set(chunks.map((c) => c.hash)).size);
  assert.equal(await count('nars'), 1);
  const packsBefore = await count('packs');
  assert.ok(packsBefore >= 1 && packsBefore <= 2, `${packsBefore} packs`);

  const gc = (now: number) => runGarbageCollection(k, server.services.chunkStore, { defaultRetentionSeconds: 0, graceSeconds: 0, now });
  const first = await gc(Date.now() + 1000);
  assert.equal(first.packs_retired, packsBefore - 1, 'a pack whose every chunk lost the race holds nothing live');
  const second = await gc(Date.now() + 2000);
  assert.equal(second.packs_deleted, packsBefore - 1);
  assert.equal(await count('packs'), 1);
  let objects = 0;
  for await (const _ of server.services.blobs.list('packs/')) objects++;
  assert.equal(objects, 1);
  assert.ok((await download(server, a.plain)).bytes!.equals(nar));
});

onEachDatabase('compaction rewrites a mostly dead pack; reads holding the old rows still succeed until it is deleted', async (_t, server) => {
  await server.createCache('main');
  const k = server.services.kysely;
  const store = server.services.chunkStore;
  // Two NARs' chunks uploaded in one chunk-protocol request: one pack holds both.
  const keep = await makeNar({ data: deterministicBytes('compact-keep', 600_000) });
  const drop = await makeNar({ data: deterministicBytes('compact-drop', 2_400_000) });
  const records = [...chunksOf(keep), ...chunksOf(drop)].map((c) => ({ ...c, size: c.data.length }));
  assert.equal((await postChunks(server, 'main', recordsBody(records), server.adminToken)).status, 200);
  for (const nar of [keep, drop]) {
    const res = await postJson(server, '/_api/v1/nar', commitBody('main', nar, chunksOf(nar).map((c) => c.hash)), server.adminToken);
    assert.equal(res.status, 200, await res.text());
  }
  assert.equal((await k.selectFrom('packs').select('id').execute()).length, 1);
  const dropNar = await k.selectFrom('nars').select('id').where('nar_hash', '=', sha256Nix32(drop)).executeTakeFirstOrThrow();
  await k.deleteFrom('objects').where('nar_id', '=', dropNar.id).execute();

  // A reader looks the kept NAR's chunks up: its rows name the shared pack …
  const oldRows = (await layoutOf(server, keep)).chunks;
  const read = async (rows: typeof oldRows) => {
    const parts: Buffer[] = [];
    for await (const piece of store.read(rows, { decompress: true })) parts.push(piece.data);
    return Buffer.concat(parts);
  };
  const gc = (now: number) => runGarbageCollection(k, store, { defaultRetentionSeconds: 0, graceSeconds: 0, now });
  const first = await gc(Date.now() + 1000);
  assert.ok(first.chunks > 0, 'the dropped NAR’s chunks are swept');
  assert.equal(first.packs_rewritten, 1, 'the pack is below half live: rewritten');
  assert.equal(first.packs_retired, 1);
  const moved = (await layoutOf(server, keep)).chunks;
  assert.notEqual(moved[0].pack_id, oldRows[0].pack_id, 'the live chunks now sit in a new pack');
  // … and reads after the compaction: the retired pack is still there.
  assert.ok((await read(oldRows)).equals(keep), 'a read that began before compaction completes');
  assert.ok((await read(moved)).equals(keep));

  const second = await gc(Date.now() + 5000);
  assert.equal(second.packs_deleted, 1, 'the retired pack is deleted a pass later');
  assert.ok(second.pack_bytes_deleted > 2_000_000, `${second.pack_bytes_deleted} bytes freed`);
  await assert.rejects(read(oldRows), 'the old pack is gone now');
  assert.ok((await read(moved)).equals(keep));
  const kept = await k.selectFrom('nars').select('file_hash').where('nar_hash', '=', sha256Nix32(keep)).executeTakeFirstOrThrow();
  const zst = await download(server, `/main/nar/${kept.file_hash.slice(7)}.nar.zst`);
  assert.ok(zst.complete && sha256Nix32(zst.bytes!) === kept.file_hash);
  let objects = 0;
  for await (const _ of server.services.blobs.list('packs/')) objects++;
  assert.equal(objects, 1);
});

onEachDatabase('a pack written but never recorded (a crash between the two) is invisible and swept', async (_t, server) => {
  const store = server.services.chunkStore;
  const pack = store.openPack();
  await pack.append([{ hash: 'a'.repeat(64), size: 3, frame: Buffer.from('not recorded') }]);
  const written = await pack.finish();
  assert.ok(written && (await server.services.blobs.head(written.key)));
  const rows = await server.services.kysely.selectFrom('chunks').select('id').execute();
  assert.equal(rows.length, 0, 'nothing names it');
  assert.equal(await store.sweepOrphans(Date.now() - 60_000), 0, 'a young pack may be an upload in progress');
  assert.equal(await store.sweepOrphans(Date.now() + 1000), 1);
  assert.equal(await server.services.blobs.head(written.key), null);
});

// Local storage only: an S3 put is atomic and leaves no temporary object.
test('a pack write killed before its rename leaves a temporary file, which the orphan sweep removes past its cutoff (local)', async (t) => {
  const server = await startTestServer({ db: 'sqlite', storage: 'local' });
  t.after(() => server.close());
  const storage = server.config.storage;
  if (storage.type !== 'local') throw new Error('expected local storage');
  const dir = path.join(storage.path, 'packs', '56');
  await mkdir(dir, { recursive: true });
  const leftover = path.join(dir, '.tmp-0123456789abcdef');
  await writeFile(leftover, ''); // opened, then the process was killed
  const store = server.services.chunkStore;
  assert.equal(await store.sweepOrphans(Date.now() - 60_000), 0, 'a young temporary file may be a write in progress');
  assert.ok(existsSync(leftover));
  assert.equal(await store.sweepOrphans(Date.now() + 1000), 1);
  assert.ok(!existsSync(leftover));
});

onEachDatabase(
  'GC merges small packs (small pushes, old one-frame blobs) into full-size ones',
  async (_t, server) => {
    await server.createCache('main');
    const nars = await Promise.all(Array.from({ length: 6 }, (_, i) => makeNar({ data: deterministicBytes(`small-${i}`, 100_000) })));
    const pushed = [];
    for (const nar of nars) pushed.push(await push(server, nar));
    const k = server.services.kysely;
    const packs = async () => (await k.selectFrom('packs').select(['id', 'size']).where('retired_at', 'is', null).execute()).length;
    assert.equal(await packs(), 6, 'one pack per push');
    const gc = (now: number) => runGarbageCollection(k, server.services.chunkStore, { defaultRetentionSeconds: 0, graceSeconds: 0, now });
    const first = await gc(Date.now() + 1000);
    assert.equal(first.packs_rewritten, 6);
    assert.equal(first.packs_retired, 6);
    assert.equal(await packs(), 1, 'merged into one pack (600 KB < the 1 MiB target)');
    const second = await gc(Date.now() + 5000);
    assert.equal(second.packs_deleted, 6);
    assert.equal(second.packs_rewritten, 0, 'a lone small pack is not rewritten again');
    let objects = 0;
    for await (const _ of server.services.blobs.list('packs/')) objects++;
    assert.equal(objects, 1);
    for (const [i, nar] of nars.entries()) {
      assert.ok((await download(server, pushed[i].plain)).bytes!.equals(nar));
      const zst = await download(server, pushed[i].zst);
      assert.equal(sha256Nix32(zst.bytes!), pushed[i].info.fileHash, 'the same .nar.zst bytes from the merged pack');
    }
  },
  { toml: { storage: { pack_target_size: 1024 * 1024 } } },
);
