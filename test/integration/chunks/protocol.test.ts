// The negotiated chunk upload, step by step and through pushNar, on SQLite and PostgreSQL.
import assert from 'node:assert/strict';
import { after } from 'node:test';
import { deterministicBytes, makeNar, sha256Nix32 } from '../../helpers/nar.ts';
import { pushNar } from '../../../src/client/push-nar.ts';
import { zstdDecompressSync } from '../../../src/compression/zstd.ts';
import { parseNarInfo } from '../../../src/nix/narinfo.ts';
import {
  chunksOf,
  clientFor,
  commitBody,
  countRows,
  metaOf,
  onEachDatabase,
  piecesOf,
  postChunks,
  postJson,
  recordsBody,
  sharedPool,
} from './support.ts';

const pool = sharedPool();
after(() => pool.close());

onEachDatabase('server-info, then missing → upload → commit by hand, and the NAR is served', async (t, server) => {
  await server.createCache('main');
  const info = await (await server.fetch('/_api/v1/server-info')).json();
  assert.deepEqual(info, {
    version: info.version,
    chunking: { min_size: 16384, avg_size: 65536, max_size: 262144 },
    max_chunk_request_bytes: server.config.maxChunkRequestBytes,
    chunk_compression: 'zstd',
  });

  const nar = await makeNar({ a: deterministicBytes('proto-a', 600_000), b: 'hello\n' });
  const chunks = chunksOf(nar);
  assert.ok(chunks.length > 3, `${chunks.length} chunks`);
  const hashes = chunks.map((c) => c.hash);
  const token = server.adminToken;

  let res = await postJson(server, '/_api/v1/chunks/missing', { cache: 'main', chunks: hashes }, token);
  assert.equal(res.status, 200);
  assert.deepEqual((await res.json()).missing, [...new Set(hashes)]);

  // Upload all but the last chunk; the commit names the one still missing.
  res = await postChunks(server, 'main', recordsBody(chunks.slice(0, -1).map((c) => ({ ...c, size: c.data.length }))), token);
  assert.equal(res.status, 200);
  assert.deepEqual(await res.json(), { stored: chunks.length - 1, deduplicated: 0 });
  const body = commitBody('main', nar, hashes);
  res = await postJson(server, '/_api/v1/nar', body, token);
  assert.equal(res.status, 400);
  const refused = await res.json();
  assert.deepEqual(refused.missing, [hashes.at(-1)]);
  assert.equal(refused.message, '1 chunks are missing or not uploaded for this cache');

  res = await postJson(server, '/_api/v1/chunks/missing', { cache: 'main', chunks: hashes }, token);
  assert.deepEqual((await res.json()).missing, [hashes.at(-1)]);
  const last = chunks.at(-1)!;
  res = await postChunks(server, 'main', recordsBody([{ ...last, size: last.data.length }]), token);
  assert.deepEqual(await res.json(), { stored: 1, deduplicated: 0 });
  res = await postJson(server, '/_api/v1/nar', body, token);
  assert.equal(res.status, 200);
  assert.deepEqual(await res.json(), { kind: 'uploaded', outcome: 'created', nar_size: nar.length });

  // Served like any other path: narinfo, the .nar.zst file, and the decompressed <narhash>.nar.
  const hashPart = body.store_path.slice('/nix/store/'.length, '/nix/store/'.length + 32);
  const narinfo = parseNarInfo(await (await server.fetch(`/main/${hashPart}.narinfo`, { token })).text());
  assert.equal(narinfo.narHash, sha256Nix32(nar));
  const file = Buffer.from(await (await server.fetch(`/main/${narinfo.url}`, { token })).arrayBuffer());
  assert.ok(zstdDecompressSync(file, nar.length).equals(nar));
  const plain = await server.fetch(`/main/nar/${sha256Nix32(nar).slice('sha256:'.length)}.nar`, { token });
  assert.ok(Buffer.from(await plain.arrayBuffer()).equals(nar));

  // Committing the same NAR under another path reuses it without checking chunks.
  res = await postJson(server, '/_api/v1/nar', commitBody('main', nar, []), token);
  assert.deepEqual(await res.json(), { kind: 'deduplicated', outcome: 'created', nar_size: nar.length });
  assert.equal(await countRows(server, 'nars'), 1);
  t.diagnostic(`${chunks.length} chunks`);
});

onEachDatabase('pushNar round-trips a NAR and a second push sends nothing', async (_t, server) => {
  await server.createCache('main');
  const client = clientFor(server);
  const nar = await makeNar({ big: deterministicBytes('push-1', 3_000_000), text: 'x\n'.repeat(600_000) });
  const meta = metaOf(nar);
  const events = { read: 0, uploaded: 0, deduplicated: 0 };
  const first = await pushNar(client, 'main', meta, piecesOf(nar), {
    pool,
    windowChunks: 8,
    onProgress: (ev) => (events[ev.type] += ev.bytes),
  });
  assert.equal(first.kind, 'uploaded');
  assert.equal(first.narSize, nar.length);
  assert.equal(first.uploadedChunks, await countRows(server, 'chunks'));
  assert.equal(events.read, nar.length);
  assert.equal(events.uploaded, first.uploadedBytes);
  assert.equal(events.deduplicated, first.dedupedBytes);
  assert.ok(first.dedupedBytes > 0, 'the repeated text dedups inside the NAR');

  const second = await pushNar(client, 'main', metaOf(nar), piecesOf(nar), { pool });
  assert.equal(second.uploadedChunks, 0);
  assert.equal(second.uploadedBytes, 0);
  assert.equal(second.dedupedBytes, nar.length);

  const res = await server.fetch(`/main/nar/${sha256Nix32(nar).slice('sha256:'.length)}.nar`, { token: server.adminToken });
  assert.ok(Buffer.from(await res.arrayBuffer()).equals(nar));
});

onEachDatabase('stats: logical NAR bytes against deduplicated stored bytes', async (_t, server) => {
  await server.createCache('main');
  await server.createCache('other');
  const client = clientFor(server);
  const common = deterministicBytes('stats-common', 2_000_000);
  const v1 = await makeNar({ data: common, version: '1' });
  const v2 = await makeNar({ data: common, version: '2', extra: deterministicBytes('stats-extra', 100_000) });
  await pushNar(client, 'main', metaOf(v1), piecesOf(v1), { pool });
  await pushNar(client, 'main', metaOf(v2), piecesOf(v2), { pool });

  const res = await server.fetch('/_api/v1/caches/main/stats', { token: server.adminToken });
  assert.equal(res.status, 200);
  const stats = await res.json();
  const chunks = new Map([...chunksOf(v1), ...chunksOf(v2)].map((c) => [c.hash, c.data.length]));
  const chunkBytes = [...chunks.values()].reduce((a, b) => a + b, 0);
  assert.equal(stats.cache, 'main');
  assert.equal(stats.paths, 2);
  assert.equal(stats.nar_bytes, v1.length + v2.length);
  assert.equal(stats.chunks, chunks.size);
  assert.equal(stats.chunk_bytes, chunkBytes);
  assert.ok(stats.chunk_bytes < 0.6 * stats.nar_bytes, `shared chunks count once: ${JSON.stringify(stats)}`);
  assert.ok(stats.stored_bytes > 0 && stats.stored_bytes <= stats.chunk_bytes * 1.01 + 1024 * stats.chunks);

  const empty = await (await server.fetch('/_api/v1/caches/other/stats', { token: server.adminToken })).json();
  assert.deepEqual(empty, { cache: 'other', paths: 0, nar_bytes: 0, chunks: 0, chunk_bytes: 0, stored_bytes: 0 });

  const global = await (await server.fetch('/_api/v1/stats', { token: server.adminToken })).json();
  assert.deepEqual(global, { caches: 2, paths: 2, nar_bytes: stats.nar_bytes, chunks: stats.chunks, chunk_bytes: chunkBytes, stored_bytes: stats.stored_bytes });
  assert.equal((await server.fetch('/_api/v1/stats')).status, 401);
  assert.equal((await server.fetch('/_api/v1/caches/main/stats')).status, 401);
});

onEachDatabase('a commit that finds chunks missing re-reads the NAR, uploads them and commits again', async (_t, server) => {
  await server.createCache('main');
  // A client whose missing-chunks answers are lost: it believes the server has everything.
  const client = clientFor(server);
  client.missingChunks = async () => [];
  const nar = await makeNar({ data: deterministicBytes('recommit', 500_000) });
  await assert.rejects(pushNar(client, 'main', metaOf(nar), piecesOf(nar), { pool }), /chunks are missing or not uploaded/);
  const r = await pushNar(client, 'main', metaOf(nar), piecesOf(nar), { pool, reopen: () => piecesOf(nar) });
  assert.equal(r.kind, 'uploaded');
  assert.equal(r.uploadedChunks, chunksOf(nar).length);
  assert.equal(await countRows(server, 'objects'), 1);
});
