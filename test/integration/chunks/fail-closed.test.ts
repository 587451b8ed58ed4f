// A NAR whose chunk blob is lost is never served as a complete 200: the client can tell.
import assert from 'node:assert/strict';
import { after } from 'node:test';
import { deterministicBytes, makeNar, sha256Nix32 } from '../../helpers/nar.ts';
import { pushNar } from '../../../src/client/push-nar.ts';
import { chunksOf, clientFor, metaOf, onEachDatabase, piecesOf, sharedPool } from './support.ts';

const pool = sharedPool();
after(() => pool.close());

onEachDatabase('a NAR whose chunk blob is gone fails closed', async (_t, server) => {
  await server.createCache('main');
  const client = clientFor(server);
  const token = server.adminToken;
  const pushed = async (seed: string) => {
    const nar = await makeNar({ data: deterministicBytes(seed, 1_500_000) });
    await pushNar(client, 'main', metaOf(nar), piecesOf(nar), { pool });
    return { nar, chunks: chunksOf(nar), url: `/main/nar/${sha256Nix32(nar).slice(7)}.nar` };
  };
  const dropBlob = async (hash: string) => {
    const row = await server.services.kysely.selectFrom('chunks').select('storage_key').where('hash', '=', hash).executeTakeFirstOrThrow();
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

  const later = await pushed('lost-later');
  await dropBlob(later.chunks[4].hash);
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
