// The push's shared ChunkUploader against a real server: NARs share requests (one pack each on the
// server), a request goes when full, when nobody adds chunks or after its linger, and a failed
// request fails exactly the NARs that had chunks in it.
import assert from 'node:assert/strict';
import { after } from 'node:test';
import { ChunkUploader } from '../../../src/client/chunk-uploader.ts';
import { pushNar } from '../../../src/client/push-nar.ts';
import { deterministicBytes, makeNar } from '../../helpers/nar.ts';
import { chunksOf, clientFor, countRows, metaOf, onEachDatabase, piecesOf, sharedPool } from './support.ts';

const pool = sharedPool();
after(() => pool.close());

onEachDatabase('three NARs pushed through one uploader share its requests and the packs they make', async (_t, server) => {
  await server.createCache('main');
  const client = clientFor(server);
  const requests: number[] = [];
  const uploader = new ChunkUploader(client, 'main', { requestBytes: 8 * 1024 * 1024, pool, onSent: (chunks) => requests.push(chunks) });
  const nars = await Promise.all([1, 2, 3].map((i) => makeNar({ data: deterministicBytes(`uploader-${i}`, 600_000) })));
  const results = await Promise.all(nars.map((nar) => pushNar(client, 'main', metaOf(nar), piecesOf(nar), { pool, uploader })));
  await uploader.close();
  assert.deepEqual(results.map((r) => r.kind), ['uploaded', 'uploaded', 'uploaded']);
  const chunks = nars.reduce((n, nar) => n + new Set(chunksOf(nar).map((c) => c.hash)).size, 0);
  // Nobody else was adding chunks when the last NAR waited, so all three went in one request.
  assert.deepEqual(requests, [chunks]);
  assert.equal(await countRows(server, 'packs'), 1);
  for (const nar of nars) {
    const res = await server.fetch(`/main/nar/${metaOf(nar).narHash.slice(7)}.nar`, { token: server.adminToken });
    assert.ok(Buffer.from(await res.arrayBuffer()).equals(nar));
  }
});

onEachDatabase('a request is sent when full, and a NAR waiting on a batch others still fill goes after the linger', async (_t, server) => {
  await server.createCache('main');
  const client = clientFor(server);
  const sent: number[] = [];
  const uploader = new ChunkUploader(client, 'main', { requestBytes: 300_000, pool, onSent: (_c, bytes) => sent.push(bytes) });
  const nar = await makeNar({ data: deterministicBytes('uploader-full', 1_500_000) });
  const chunks = chunksOf(nar);
  const busy = uploader.stream(); // another NAR still being read: the batch would wait for it
  const started = performance.now();
  const r = await pushNar(client, 'main', metaOf(nar), piecesOf(nar), { pool, uploader });
  const ms = performance.now() - started;
  assert.equal(r.uploadedChunks, new Set(chunks.map((c) => c.hash)).size);
  assert.ok(sent.length >= 5, `${sent.length} requests for 1.5 MB of incompressible chunks in 300 kB requests`);
  assert.ok(sent.every((bytes) => bytes <= 300_000), `request sizes ${sent.join(', ')}`);
  assert.ok(ms >= 250, `the last batch went after its linger, not at once (${ms.toFixed(0)} ms)`);
  busy.abandon();
  await uploader.close();
});

onEachDatabase('a failed request fails every NAR with chunks in it, and the uploader goes on', async (_t, server) => {
  await server.createCache('main');
  const client = clientFor(server);
  const uploader = new ChunkUploader(client, 'main', { requestBytes: 8 * 1024 * 1024, pool });
  const nar = await makeNar({ data: deterministicBytes('uploader-fail', 400_000) });
  const [first, second] = chunksOf(nar);
  const liar = uploader.stream();
  const bystander = uploader.stream();
  await liar.send([{ hash: second.hash, data: Buffer.from(first.data) }]); // a record whose hash is not its content's
  await bystander.send([{ hash: first.hash, data: Buffer.from(first.data) }]);
  // Both wait, so their shared batch goes at once; the server refuses it as a whole.
  await Promise.all([liar.settled(), bystander.settled()].map((p) => assert.rejects(p, /content hash mismatch/)));
  const ok = await pushNar(client, 'main', metaOf(nar), piecesOf(nar), { pool, uploader });
  assert.equal(ok.kind, 'uploaded');
  await uploader.close();
});
