// Issue 13, item 1: the work one push request can cause is bounded — decompression bombs, NAR size
// limits per cache, chunk lists that claim more than the limit, and pushes in flight per token.
// Real server, SQLite+disk and PostgreSQL+S3.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { createConnection, type Socket } from 'node:net';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { createZstdCompress } from 'node:zlib';
import { DB_KINDS } from '../../helpers/databases.ts';
import { postgresUnavailable, skipUnless } from '../../helpers/env.ts';
import { startTestServer, type TestServer } from '../../helpers/server.ts';
import { nix32Of, randomStorePath, sampleNar, uploadPathMeta } from '../../helpers/nar.ts';
import { issueViaApi } from '../../helpers/tokens.ts';
import { nar, u64 } from '../../unit/nix/nar-builder.ts';
import { refused } from './bad-input-harness.ts';
import { commitBody, countRows, postChunks, postJson, recordsBody, sha256Hex } from '../chunks/support.ts';

const MiB = 1024 * 1024;

/** A valid NAR of one regular file of `size` zero bytes, zstd-compressed as it streams (never whole in memory). */
async function zeroBomb(size: number): Promise<Buffer> {
  async function* parts(): AsyncGenerator<Buffer> {
    yield Buffer.concat([nar('nix-archive-1', '(', 'type', 'regular', 'contents'), u64(size)]);
    const zeros = Buffer.alloc(MiB);
    for (let left = size; left > 0; left -= MiB) yield left >= MiB ? zeros : zeros.subarray(0, left);
    yield nar(')');
  }
  return buffer(Readable.from(parts()).pipe(createZstdCompress()));
}

/** Opens a push whose body never completes, so it stays in flight; resolves once the server has the request. */
async function holdOpen(server: TestServer, token: string): Promise<Socket> {
  const url = new URL(server.url);
  const socket = createConnection({ host: url.hostname, port: Number(url.port) });
  await new Promise((resolve) => socket.once('connect', resolve));
  const meta = JSON.stringify(uploadPathMeta('main', randomStorePath().path, Buffer.alloc(1000)));
  socket.write(`PUT /_api/v1/upload-path HTTP/1.1\r\nhost: ${url.host}\r\nauthorization: Bearer ${token}\r\nx-loft-nar-info: ${meta}\r\ncontent-length: 1000\r\n\r\n` + 'x'.repeat(10));
  socket.on('error', () => {});
  return socket;
}

for (const db of DB_KINDS) {
  test(`one push request causes bounded work (${db})`, { timeout: 300_000 }, async (t) => {
    if (db === 'postgres' && !skipUnless(t, await postgresUnavailable())) return;
    const server = await startTestServer({
      db,
      toml: {
        max_nar_size: 4096 * MiB,
        body_idle_timeout_ms: 60_000,
        min_body_rate: 0,
        limits: { max_concurrent_pushes_per_token: 2, max_nar_size_per_cache: { small: 1 * MiB } },
      },
    });
    t.after(() => server.close());
    await server.createCache('main');
    await server.createCache('small');

    await t.test('a small zstd body expanding to 1 GiB is refused after a bounded amount of decompression', async () => {
      const bomb = await zeroBomb(1024 * MiB);
      assert.ok(bomb.length < 100_000, `the bomb is ${bomb.length} bytes`);
      const res = await server.fetch(`/main/nar/${nix32Of(bomb)}.nar.zst`, { method: 'PUT', token: server.adminToken, body: new Uint8Array(bomb) });
      const text = await res.text();
      assert.equal(res.status, 413, text);
      const m = /expands more than 1000 times \((\d+) bytes from (\d+)\); refused as a decompression bomb/.exec(text);
      assert.ok(m, text);
      // Work bound: refused just past the free allowance, far short of the 1 GiB it would expand to.
      assert.ok(Number(m[1]) < 96 * MiB, `decompressed ${m[1]} bytes before refusing`);
      const health = await server.fetch('/v1/healthz');
      assert.equal(health.status, 200);
    });

    await t.test('max_nar_size_per_cache applies to upload-path and the chunk commit, before any body or chunk work', async () => {
      const big = await sampleNar('big', 2 * MiB);
      const res = await server.fetch('/_api/v1/upload-path', {
        method: 'PUT',
        token: server.adminToken,
        headers: { 'x-loft-nar-info': JSON.stringify(uploadPathMeta('small', randomStorePath().path, big)) },
        body: new Uint8Array(big),
      });
      await refused(res, 413, /NarSize \d+ exceeds the limit of 1048576 bytes for cache 'small'/);
      // One chunk listed 130,000 times, claiming a NarSize to match: refused by the limit without
      // looking at a single chunk (none of these exist).
      const chunk = createHash('sha256').update('x').digest('hex');
      const meta = uploadPathMeta('main', randomStorePath().path, Buffer.alloc(0));
      const commit = await server.fetch('/_api/v1/nar', {
        method: 'POST',
        token: server.adminToken,
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ ...meta, nar_size: 130_000 * 256 * 1024, chunks: Array(130_000).fill(chunk) }),
      });
      await refused(commit, 413, /NarSize 34078720000 exceeds the limit of 4294967296 bytes for cache 'main'/);
    });

    await t.test('a chunk list holding more bytes than the claimed NarSize is refused before any chunk is read back', async () => {
      const data = Buffer.alloc(4096, 7);
      const hash = sha256Hex(data);
      const up = await postChunks(server, 'main', recordsBody([{ hash, size: data.length, data }]), server.adminToken);
      assert.equal(up.status, 200, await up.text());
      const narsBefore = await countRows(server, 'nars');
      const commit = await postJson(server, '/_api/v1/nar', { ...commitBody('main', data, []), chunks: Array(130_000).fill(hash) }, server.adminToken);
      await refused(commit, 400, /NarSize mismatch: claimed 4096, the chunks hold 532480000 bytes/);
      assert.equal(await countRows(server, 'nars'), narsBefore);
    });

    await t.test('a token with max_concurrent_pushes_per_token pushes in flight gets 429 with Retry-After, others do not', async () => {
      const pusher = await issueViaApi(server, { caches: { main: ['push', 'pull'] } });
      const held = [await holdOpen(server, pusher.token), await holdOpen(server, pusher.token)];
      t.after(() => held.forEach((s) => s.destroy()));
      const small = await sampleNar('small-one');
      const push = (token: string) =>
        server.fetch('/_api/v1/upload-path', {
          method: 'PUT',
          token,
          headers: { 'x-loft-nar-info': JSON.stringify(uploadPathMeta('main', randomStorePath().path, small)) },
          body: new Uint8Array(small),
        });
      // Wait until both held pushes are counted (the machine may be slow to accept them).
      let res: Response;
      for (let tries = 0; ; tries++) {
        res = await push(pusher.token);
        if (res.status === 429 || tries > 100) break;
        await res.arrayBuffer();
        await new Promise((r) => setTimeout(r, 100));
      }
      assert.equal(res.headers.get('retry-after'), '1');
      await refused(res, 429, /already has 2 pushes in flight/);
      const other = await push(server.adminToken);
      assert.equal(other.status, 200, await other.text());
      held.forEach((s) => s.destroy());
      for (let tries = 0; ; tries++) {
        res = await push(pusher.token);
        if (res.status === 200 || tries > 100) break;
        await res.arrayBuffer();
        await new Promise((r) => setTimeout(r, 100));
      }
      assert.equal(res.status, 200, 'the slots are given back when the held pushes end');
    });
  });
}
