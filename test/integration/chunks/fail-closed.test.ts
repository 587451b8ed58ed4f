// A NAR whose pack object is lost is never served as a complete 200: the client can tell.
import assert from 'node:assert/strict';
import { after } from 'node:test';
import { deterministicBytes, makeNar, sha256Nix32 } from '../../helpers/nar.ts';
import type { TestServer } from '../../helpers/server.ts';
import { pushNar } from '../../../src/client/push-nar.ts';
import { chunksOf, clientFor, commitBody, countRows, metaOf, onEachDatabase, piecesOf, postJson, recordsBody, sharedPool } from './support.ts';

const pool = sharedPool();
after(() => pool.close());

/** Flips the stored byte `at` bytes into the frame of chunk `hash`, inside its pack. */
async function flipStoredByte(server: TestServer, hash: string, at: number): Promise<void> {
  const { kysely, blobs } = server.services;
  const row = await kysely
    .selectFrom('chunks as c')
    .innerJoin('packs as p', 'p.id', 'c.pack_id')
    .select(['p.storage_key', 'c.pack_offset'])
    .where('c.hash', '=', hash)
    .executeTakeFirstOrThrow();
  const bytes = await blobs.getBuffer(row.storage_key);
  bytes[row.pack_offset + at] ^= 0xff;
  await blobs.put(row.storage_key, bytes);
}

onEachDatabase('a NAR whose pack is gone or corrupt fails closed', async (_t, server) => {
  await server.createCache('main');
  const client = clientFor(server);
  const token = server.adminToken;
  const pushed = async (seed: string, size = 1_500_000) => {
    const nar = await makeNar({ data: deterministicBytes(seed, size) });
    await pushNar(client, 'main', metaOf(nar), piecesOf(nar), { pool });
    return { nar, chunks: chunksOf(nar), url: `/main/nar/${sha256Nix32(nar).slice(7)}.nar` };
  };
  // Each push is one chunk-upload request, so one pack: losing it loses the NAR from that chunk on.
  const dropBlob = async (hash: string) => {
    const row = await server.services.kysely
      .selectFrom('chunks as c')
      .innerJoin('packs as p', 'p.id', 'c.pack_id')
      .select('p.storage_key')
      .where('c.hash', '=', hash)
      .executeTakeFirstOrThrow();
    await server.services.blobs.delete([row.storage_key]);
    return row.storage_key;
  };

  const first = await pushed('lost-first');
  const lostKey = await dropBlob(first.chunks[0].hash);
  const res = await server.fetch(first.url, { token });
  assert.equal(res.status, 503);
  const message = ((await res.json()) as { message: string }).message;
  assert.match(message, /NAR data is unavailable/);
  // The storage layout is internal: neither the key nor the chunk hash is told to the puller.
  assert.ok(!message.includes(lostKey) && !message.includes(first.chunks[0].hash), message);

  // A pack range after the first one (reads are coalesced up to 4 MiB): corrupt one byte of a late chunk.
  const later = await pushed('lost-later', 9_000_000);
  await flipStoredByte(server, later.chunks[later.chunks.length - 2].hash, 10);
  const partial = await server.fetch(later.url, { token });
  assert.equal(partial.status, 200);
  const declared = Number(partial.headers.get('content-length'));
  assert.equal(declared, later.nar.length);
  // The client sees the truncation: reading fails, or yields fewer bytes than Content-Length promised.
  const received = await partial.arrayBuffer().then(
    (b) => b.byteLength,
    () => -1,
  );
  assert.ok(received < declared, `received ${received} of ${declared} bytes`);
});

onEachDatabase('a commit whose uploaded chunks were corrupted in storage is a 503, and records nothing', async (_t, server) => {
  await server.createCache('main');
  const client = clientFor(server);
  const nar = await makeNar({ data: deterministicBytes('corrupt-before-commit', 1_000_000) });
  const chunks = chunksOf(nar);
  const missing = await client.missingChunks('main', chunks.map((c) => c.hash));
  assert.equal(missing.length, new Set(chunks.map((c) => c.hash)).size);
  const up = await server.fetch('/_api/v1/chunks?cache=main', {
    method: 'POST',
    token: server.adminToken,
    headers: { 'content-type': 'application/x-loft-chunks' },
    body: recordsBody(chunks.map((c) => ({ ...c, size: c.data.length }))),
  });
  assert.equal(up.status, 200, await up.text());
  // One stored byte of a middle chunk flips between the upload and the commit.
  await flipStoredByte(server, chunks[Math.floor(chunks.length / 2)].hash, 20);

  const res = await postJson(server, '/_api/v1/nar', commitBody('main', nar, chunks.map((c) => c.hash)), server.adminToken);
  assert.equal(res.status, 503, 'the server’s storage is at fault, not the client’s NAR');
  assert.match(((await res.json()) as { message: string }).message, /cannot be read back intact/);
  assert.equal(await countRows(server, 'objects'), 0);
});
