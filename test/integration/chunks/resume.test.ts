// An interrupted chunk upload resumes: what reached the server stays staged and is not sent again.
import assert from 'node:assert/strict';
import http from 'node:http';
import { after } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { deterministicBytes, makeNar, sha256Nix32 } from '../../helpers/nar.ts';
import { ChunkUploader } from '../../../src/client/chunk-uploader.ts';
import { pushNar } from '../../../src/client/push-nar.ts';
import { chunksOf, clientFor, countRows, metaOf, onEachDatabase, piecesOf, postJson, recordsBody, sharedPool } from './support.ts';

const pool = sharedPool();
after(() => pool.close());

onEachDatabase(
  'a push aborted midway resumes with only the missing chunks',
  async (_t, server) => {
    await server.createCache('main');
    const client = clientFor(server);
    const nar = await makeNar({ data: deterministicBytes('resume', 4_000_000) });
    const distinct = new Set(chunksOf(nar).map((c) => c.hash)).size;
    const abort = new AbortController();
    let requests = 0;
    // Small requests, so the push is cut after its third one reached the server.
    const uploader = new ChunkUploader(client, 'main', {
      requestBytes: 150_000, // below the server's max_chunk_request_bytes (200,000 here)
      pool,
      signal: abort.signal,
      onSent: () => {
        if (++requests === 3) abort.abort();
      },
    });
    await assert.rejects(pushNar(client, 'main', metaOf(nar), piecesOf(nar), { pool, uploader, windowChunks: 16, signal: abort.signal }));
    await uploader.close();
    await sleep(300); // let the server finish the records it had fully received
    const kept = await countRows(server, 'chunks');
    assert.ok(kept >= 3 && kept < distinct, `${kept} of ${distinct} chunks reached the server`);
    assert.equal(await countRows(server, 'objects'), 0);

    const meta = metaOf(nar);
    const resumed = await pushNar(client, 'main', meta, piecesOf(nar), { pool });
    assert.equal(resumed.kind, 'uploaded');
    assert.equal(resumed.uploadedChunks, distinct - kept);
    assert.equal(await countRows(server, 'chunks'), distinct);
    const served = await server.fetch(`/main/nar/${sha256Nix32(nar).slice(7)}.nar`, { token: server.adminToken });
    assert.ok(Buffer.from(await served.arrayBuffer()).equals(nar));
  },
  { toml: { max_chunk_request_bytes: 200_000 } },
);

onEachDatabase('records fully received before a connection drops stay stored and staged', async (_t, server) => {
  await server.createCache('main');
  const nar = await makeNar({ data: deterministicBytes('truncated', 1_000_000) });
  const chunks = chunksOf(nar);
  const body = recordsBody(chunks.map((c) => ({ ...c, size: c.data.length })));
  const firstTwo = recordsBody(chunks.slice(0, 2).map((c) => ({ ...c, size: c.data.length }))).length;

  // Content-Length promises the whole body; the client vanishes a few bytes into the third record.
  await new Promise<void>((resolve) => {
    const req = http.request(`${server.url}/_api/v1/chunks?cache=main`, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${server.adminToken}`,
        'content-type': 'application/x-loft-chunks',
        'content-length': body.length,
      },
    });
    req.on('error', () => resolve());
    req.on('response', (res) => {
      res.resume();
      resolve();
    });
    req.write(body.subarray(0, firstTwo + 100), () => setTimeout(() => req.destroy(), 300));
  });
  await sleep(300);
  const res = await postJson(server, '/_api/v1/chunks/missing', { cache: 'main', chunks: chunks.map((c) => c.hash) }, server.adminToken);
  assert.deepEqual((await res.json()).missing, chunks.slice(2).map((c) => c.hash));
  assert.equal(await countRows(server, 'chunk_stagings'), 2);
});
