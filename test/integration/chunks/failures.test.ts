// What the chunk protocol refuses, and the rule that chunk existence never leaks across caches.
import assert from 'node:assert/strict';
import { after } from 'node:test';
import { deterministicBytes, makeNar, sha256Nix32 } from '../../helpers/nar.ts';
import type { TestServer } from '../../helpers/server.ts';
import { pushNar } from '../../../src/client/push-nar.ts';
import {
  chunksOf,
  clientFor,
  commitBody,
  countPackObjects,
  countRows,
  issueToken,
  metaOf,
  onEachDatabase,
  piecesOf,
  postChunks,
  postJson,
  recordsBody,
  sha256Hex,
  sharedPool,
} from './support.ts';

const pool = sharedPool();
after(() => pool.close());
const MAX_REQUEST = 1_000_000;

async function errorOf(res: Response): Promise<{ status: number; message: string }> {
  return { status: res.status, message: ((await res.json()) as { message: string }).message };
}

async function assertNothingStored(server: TestServer) {
  assert.equal(await countRows(server, 'chunks'), 0);
  assert.equal(await countRows(server, 'chunk_stagings'), 0);
  assert.equal(await countPackObjects(server), 0);
}

onEachDatabase(
  'chunk uploads are verified record by record',
  async (t, server) => {
    await server.createCache('main');
    const token = server.adminToken;
    const data = deterministicBytes('fail-chunk', 50_000);
    const hash = sha256Hex(data);

    await t.test('a record whose data does not match its hash', async () => {
      const wrong = sha256Hex(Buffer.from('something else'));
      const e = await errorOf(await postChunks(server, 'main', recordsBody([{ hash: wrong, size: data.length, data }]), token));
      assert.equal(e.status, 400);
      assert.match(e.message, new RegExp(`^chunk ${wrong}: content hash mismatch`));
      await assertNothingStored(server);
    });
    await t.test('a corrupt frame', async () => {
      const frame = Buffer.from(deterministicBytes('garbage', 1000));
      const e = await errorOf(await postChunks(server, 'main', recordsBody([{ hash, size: data.length, frame }]), token));
      assert.equal(e.status, 400);
      assert.match(e.message, new RegExp(`^chunk ${hash}: not a valid zstd frame`));
      await assertNothingStored(server);
    });
    await t.test('a size that disagrees with the frame', async () => {
      const e = await errorOf(await postChunks(server, 'main', recordsBody([{ hash, size: data.length + 10, data }]), token));
      assert.equal(e.status, 400);
      assert.match(e.message, /declared 50010 bytes, the frame holds 50000/);
      await assertNothingStored(server);
    });
    await t.test('a chunk larger than the maximum chunk size', async () => {
      const big = deterministicBytes('too-big', server.config.chunking.maxSize + 1);
      const e = await errorOf(await postChunks(server, 'main', recordsBody([{ hash: sha256Hex(big), size: big.length, data: big }]), token));
      assert.equal(e.status, 400);
      assert.match(e.message, /exceeds the chunk size limit of 262144/);
      await assertNothingStored(server);
    });
    await t.test('a body that ends inside a record', async () => {
      const body = recordsBody([{ hash, size: data.length, data }]);
      const e = await errorOf(await postChunks(server, 'main', body.subarray(0, body.length - 5), token));
      assert.equal(e.status, 400);
      assert.match(e.message, /ends inside a record/);
      await assertNothingStored(server);
    });
    await t.test('a request over max_chunk_request_bytes is refused before it is read', async () => {
      const info = (await (await server.fetch('/_api/v1/server-info')).json()) as { max_chunk_request_bytes: number };
      assert.equal(info.max_chunk_request_bytes, MAX_REQUEST);
      const e = await errorOf(await postChunks(server, 'main', Buffer.alloc(MAX_REQUEST + 1), token));
      assert.equal(e.status, 413);
      await assertNothingStored(server);
    });
    await t.test('another content type', async () => {
      const res = await server.fetch('/_api/v1/chunks?cache=main', { method: 'POST', token, body: recordsBody([{ hash, size: data.length, data }]) });
      assert.equal(res.status, 415);
    });
    await t.test('invalid hashes in a missing-chunks query', async () => {
      const e = await errorOf(await postJson(server, '/_api/v1/chunks/missing', { cache: 'main', chunks: [hash, 'ABC'] }, token));
      assert.equal(e.status, 400);
      assert.match(e.message, /invalid chunk hash 'ABC'/);
    });
    await t.test('a valid record after all that is stored once, then deduplicated', async () => {
      const body = recordsBody([{ hash, size: data.length, data }]);
      assert.deepEqual(await (await postChunks(server, 'main', body, token)).json(), { stored: 1, deduplicated: 0 });
      assert.deepEqual(await (await postChunks(server, 'main', body, token)).json(), { stored: 0, deduplicated: 1 });
      assert.equal(await countPackObjects(server), 1);
    });
  },
  { toml: { max_chunk_request_bytes: MAX_REQUEST } },
);

onEachDatabase('the commit checks the chunks really make up the claimed NAR', async (t, server) => {
  await server.createCache('main');
  const token = server.adminToken;
  const nar = await makeNar({ data: deterministicBytes('commit', 400_000) });
  const chunks = chunksOf(nar);
  const hashes = chunks.map((c) => c.hash);
  await postChunks(server, 'main', recordsBody(chunks.map((c) => ({ ...c, size: c.data.length }))), token);
  const notNar = deterministicBytes('not-a-nar', 100_000);
  await postChunks(server, 'main', recordsBody([{ hash: sha256Hex(notNar), size: notNar.length, data: notNar }]), token);

  const refuse = async (body: Record<string, unknown>, message: RegExp) => {
    const e = await errorOf(await postJson(server, '/_api/v1/nar', body, token));
    assert.equal(e.status, 400);
    assert.match(e.message, message);
    assert.equal(await countRows(server, 'objects'), 0);
    assert.equal(await countRows(server, 'nars'), 0);
    assert.equal(await countRows(server, 'nar_chunks'), 0);
  };
  await t.test('wrong NarHash', () =>
    refuse(commitBody('main', nar, hashes, { nar_hash: sha256Nix32(Buffer.from('other')) }), /^NarHash mismatch/));
  await t.test('wrong NarSize', () => refuse(commitBody('main', nar, hashes, { nar_size: nar.length + 1 }), /^NarSize mismatch/));
  await t.test('chunks in the wrong order', () =>
    refuse(commitBody('main', nar, [...hashes].reverse()), /NarHash mismatch|invalid NAR/));
  await t.test('not a NAR', () => refuse(commitBody('main', notNar, [sha256Hex(notNar)]), /^invalid NAR/));
  await t.test('invalid chunk hashes', () => refuse(commitBody('main', nar, ['xyz']), /invalid chunk hash 'xyz'/));
  await t.test('bad path metadata', () => refuse(commitBody('main', nar, hashes, { store_path: '/nix/store/nope' }), /store path/));
});

onEachDatabase('permissions, and chunks of caches the caller cannot read stay invisible', async (t, server) => {
  await server.createCache('secret');
  await server.createCache('open', { is_public: true });
  await server.createCache('team');
  const admin = clientFor(server);
  const secretNar = await makeNar({ data: deterministicBytes('secret', 300_000) });
  const openNar = await makeNar({ data: deterministicBytes('open', 300_000) });
  await pushNar(admin, 'secret', metaOf(secretNar), piecesOf(secretNar), { pool });
  await pushNar(admin, 'open', metaOf(openNar), piecesOf(openNar), { pool });
  const pusher = await issueToken(server, { team: ['push', 'pull'] });
  const puller = await issueToken(server, { team: ['pull'] });
  const secretHashes = chunksOf(secretNar).map((c) => c.hash);
  const openHashes = chunksOf(openNar).map((c) => c.hash);

  await t.test('no token → 401, no push permission → 403', async () => {
    const query = { cache: 'team', chunks: openHashes };
    assert.equal((await postJson(server, '/_api/v1/chunks/missing', query)).status, 401);
    assert.equal((await postJson(server, '/_api/v1/chunks/missing', query, puller)).status, 403);
    assert.equal((await postChunks(server, 'team', Buffer.alloc(0))).status, 401);
    assert.equal((await postChunks(server, 'team', Buffer.alloc(0), puller)).status, 403);
    assert.equal((await postJson(server, '/_api/v1/nar', commitBody('team', openNar, openHashes))).status, 401);
    assert.equal((await postJson(server, '/_api/v1/nar', commitBody('team', openNar, openHashes), puller)).status, 403);
    assert.equal((await postJson(server, '/_api/v1/chunks/missing', { cache: 'secret', chunks: [] }, pusher)).status, 403);
  });

  await t.test('chunks of a public cache are present; chunks only in a private cache are missing', async () => {
    const res = await postJson(server, '/_api/v1/chunks/missing', { cache: 'team', chunks: [...openHashes, ...secretHashes] }, pusher);
    assert.deepEqual((await res.json()).missing, secretHashes);
  });

  await t.test("claiming the private cache's NAR by its hash with other chunks fails", async () => {
    const garbage = deterministicBytes('garbage-claim', secretNar.length);
    const chunks = chunksOf(garbage);
    await postChunks(server, 'team', recordsBody(chunks.map((c) => ({ ...c, size: c.data.length }))), pusher);
    const claim = commitBody('team', secretNar, chunks.map((c) => c.hash));
    let res = await postJson(server, '/_api/v1/nar', claim, pusher);
    assert.equal(res.status, 400);
    assert.match((await res.json()).message, /NarHash mismatch|invalid NAR/);
    res = await postJson(server, '/_api/v1/nar', commitBody('team', secretNar, []), pusher);
    assert.equal(res.status, 400);
    // Naming the secret chunks does not help either: they are not visible to this token.
    res = await postJson(server, '/_api/v1/nar', commitBody('team', secretNar, secretHashes), pusher);
    assert.equal(res.status, 400);
    assert.deepEqual((await res.json()).missing, secretHashes);
    const team = await (await server.fetch('/_api/v1/caches/team/stats', { token: pusher })).json();
    assert.equal(team.paths, 0);
  });

  await t.test('re-uploading a private chunk deduplicates silently, and the push then succeeds', async () => {
    const blobs = await countPackObjects(server);
    const [first] = chunksOf(secretNar);
    const res = await postChunks(server, 'team', recordsBody([{ ...first, size: first.data.length }]), pusher);
    assert.deepEqual(await res.json(), { stored: 1, deduplicated: 0 }, 'the answer does not reveal the chunk existed');
    assert.equal(await countPackObjects(server), blobs);
    const client = clientFor(server, pusher);
    const result = await pushNar(client, 'team', metaOf(secretNar), piecesOf(secretNar), { pool });
    assert.equal(result.kind, 'uploaded');
    assert.equal(result.uploadedChunks, secretHashes.length - 1);
    assert.equal(await countPackObjects(server), await countRows(server, 'packs'));
  });
});
