import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { once } from 'node:events';
import type { Worker } from 'node:worker_threads';
import { ChunkWorkerPool } from '../../../src/compression/pool.ts';
import { zstdCompressSync, zstdDecompressSync } from '../../../src/compression/zstd.ts';

const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

/** An owned chunk, like FastCdcChunker's: half random, half compressible. */
function makeChunk(i: number): Buffer {
  const chunk = Buffer.allocUnsafeSlow(16 * 1024 + i * 97);
  randomBytes(chunk.length >> 1).copy(chunk);
  chunk.fill(`chunk ${i} `, chunk.length >> 1);
  return chunk;
}

test('200 chunks compressed in parallel have correct frames and frame hashes', async () => {
  const pool = new ChunkWorkerPool({ threads: 2, level: 3 });
  try {
    const chunks = Array.from({ length: 200 }, (_, i) => makeChunk(i));
    const expected = chunks.map((c) => ({ copy: Buffer.from(c) }));
    const results = await Promise.all(chunks.map((c) => pool.compress(c, { hashStored: true })));
    results.forEach((r, i) => {
      assert.equal(r.size, expected[i].copy.length);
      assert.equal(r.storedHash, sha256(r.compressed));
      assert.ok(r.compressed.length < r.size);
      assert.ok(zstdDecompressSync(r.compressed, r.size).equals(expected[i].copy));
    });
    // Owned chunks were transferred, not copied.
    assert.equal(chunks[0].byteLength, 0);
  } finally {
    await pool.close();
  }
});

test('a chunk that is a view into a larger buffer is copied, not detached', async () => {
  const pool = new ChunkWorkerPool({ threads: 1 });
  try {
    const big = randomBytes(100_000);
    const view = big.subarray(10, 50_000);
    const copy = Buffer.from(view);
    const r = await pool.compress(view, { hashStored: false });
    assert.equal(r.storedHash, undefined, 'the frame is hashed only when asked');
    assert.ok(zstdDecompressSync(r.compressed, r.size).equals(copy));
    assert.equal(big.length, 100_000);
  } finally {
    await pool.close();
  }
});

test('verifyFrames checks every frame of a batch against its size and content hash', async () => {
  const pool = new ChunkWorkerPool({ threads: 2 });
  try {
    const data = makeChunk(3);
    const hash = sha256(data);
    const frame = zstdCompressSync(data, 3);
    const other = makeChunk(4);
    const good = [
      { frame, hash, size: data.length },
      { frame: zstdCompressSync(other, 3), hash: sha256(other), size: other.length },
    ];
    await pool.verifyFrames(good);
    assert.ok(zstdDecompressSync(frame, data.length).equals(data), 'the caller keeps its frame');

    await assert.rejects(pool.verifyFrames([...good, { frame, hash: 'ab'.repeat(32), size: data.length }]), {
      message: `chunk ${'ab'.repeat(32)}: content hash mismatch`,
    });
    const tampered = Buffer.from(frame);
    tampered[tampered.length >> 1] ^= 0x01;
    await assert.rejects(
      pool.verifyFrames([{ frame: tampered, hash, size: data.length }]),
      new RegExp(`^WorkerInputError: chunk ${hash}: (content hash mismatch|not a valid zstd frame)`),
    );
    await assert.rejects(pool.verifyFrames([{ frame: frame.subarray(0, 20), hash, size: data.length }]), /not a valid zstd frame/);
    // A frame holding more than declared is refused from its header, before anything is decompressed.
    await assert.rejects(pool.verifyFrames([{ frame, hash, size: data.length - 1 }]), /declared .* bytes, the frame holds/);
    await assert.rejects(pool.verifyFrames([{ frame, hash, size: data.length + 1 }]), /declared .* bytes, the frame holds/);
  } finally {
    await pool.close();
  }
});

test('a crashed worker fails its task and is replaced', async () => {
  // The worker is terminated right after it is handed a task. On a loaded machine the test's thread
  // can be descheduled long enough for the worker to finish first (the reply then wins the race and
  // nothing crashed mid-task): a large incompressible task makes that rare, and such a round is redone.
  for (let round = 1; ; round++) {
    const firstWorker = once(process, 'worker') as Promise<[Worker]>;
    const pool = new ChunkWorkerPool({ threads: 1 });
    try {
      const [worker] = await firstWorker;
      await pool.compress(makeChunk(0), { hashStored: false }); // the worker is up, so its death is a crash, not a failed start
      const pending = pool.compress(randomBytes(32 * 1024 * 1024), { hashStored: false });
      const replacement = once(process, 'worker');
      await worker.terminate();
      const outcome = await pending.then(
        () => undefined,
        (err: unknown) => err,
      );
      if (outcome === undefined) {
        assert.ok(round < 5, 'the worker finished its task before termination in 5 rounds');
        continue;
      }
      assert.match((outcome as Error).message, /chunk worker exited/);
      await replacement;
      const chunk = makeChunk(1);
      const copy = Buffer.from(chunk);
      const r = await pool.compress(chunk, { hashStored: true });
      assert.ok(zstdDecompressSync(r.compressed, r.size).equals(copy));
      return;
    } finally {
      await pool.close();
    }
  }
});

test('close() rejects queued work and later calls', async () => {
  const pool = new ChunkWorkerPool({ threads: 1 });
  const queued = Array.from({ length: 5 }, (_, i) => pool.compress(makeChunk(i), { hashStored: false }));
  const settled = Promise.allSettled(queued);
  await pool.close();
  const outcomes = await settled;
  assert.ok(outcomes.some((o) => o.status === 'rejected'));
  await assert.rejects(pool.compress(makeChunk(0), { hashStored: false }), /closed/);
  await pool.close(); // idempotent
});

test('a NAR session cuts, hashes and lists a NAR in its worker, exactly as the main thread would', async () => {
  const { makeNar, deterministicBytes, sha256Nix32 } = await import('../../helpers/nar.ts');
  const { chunkBuffer, DEFAULT_CHUNKING } = await import('../../../src/chunking/fastcdc.ts');
  const { listNar } = await import('../../../src/nix/nar/listing.ts');
  const nar = await makeNar({ big: deterministicBytes('session', 900_000), dir: { link: { link: 'big' } } });
  const pool = new ChunkWorkerPool({ threads: 2 });
  try {
    const session = pool.openSession({ compression: 'none', chunking: DEFAULT_CHUNKING, maxNarSize: 1 << 30, listingCap: 1 << 20 });
    const cut = [];
    for (let i = 0; i < nar.length; i += 100_000) cut.push(...(await session.input(Buffer.from(nar.subarray(i, i + 100_000)))));
    const { chunks, summary } = await session.end();
    cut.push(...chunks);
    assert.deepEqual(cut.map((c) => c.hash), chunkBuffer(nar).map(sha256));
    assert.equal(summary.narHash, sha256Nix32(nar));
    assert.equal(summary.narSize, nar.length);
    assert.deepEqual(JSON.parse(summary.listing!), await listNar(Readable.from([nar])));
    const served = Buffer.from('the served bytes');
    await session.served(served);
    assert.deepEqual(await session.digest(), { fileHash: sha256Nix32(served), fileSize: served.length });
  } finally {
    await pool.close();
  }
});

test('an urgent verification session hashes the NAR an xz file decompresses to, and the file; its calls go first', async () => {
  const { makeNar, deterministicBytes, sha256Nix32 } = await import('../../helpers/nar.ts');
  const { createHash } = await import('node:crypto');
  const { xzSync } = await import('node-liblzma');
  const nar = await makeNar({ big: deterministicBytes('verified', 3_000_000), text: Buffer.from('x'.repeat(2_000_000)) });
  const xz = xzSync(nar, { preset: 1 });
  const pool = new ChunkWorkerPool({ threads: 1 });
  try {
    // An ingest-like session queued ahead on the same (only) worker.
    const other = pool.openSession({ compression: 'none', maxNarSize: 1 << 30, listingCap: 1 << 20 });
    const session = pool.openSession({ compression: 'xz', maxNarSize: nar.length, listingCap: 0, urgent: true });
    const order: string[] = [];
    const background = Array.from({ length: 4 }, () => other.input(Buffer.alloc(0)).then(() => order.push('other')));
    for (let i = 0; i < xz.length; i += 65_536) {
      const piece = session.input(Buffer.from(xz.subarray(i, i + 65_536)));
      if (i === 0) void piece.then(() => order.push('urgent'));
      assert.deepEqual(await piece, [], 'no chunks without chunking');
    }
    const end = await session.end();
    assert.equal(end.summary.narHash, sha256Nix32(nar));
    assert.equal(end.summary.narSize, nar.length);
    assert.equal(end.summary.inputHash, createHash('sha256').update(xz).digest('hex'));
    await Promise.all(background);
    assert.ok(order.indexOf('urgent') <= 1, `the urgent call ran ahead of most queued ones: ${order.join(', ')}`);
    session.close();
    other.close();
    // Without hashInput (pull-through: no signature covers FileHash), only the NAR is hashed.
    const narOnly = pool.openSession({ compression: 'xz', maxNarSize: nar.length, listingCap: 0, urgent: true, hashInput: false });
    await narOnly.input(Buffer.from(xz));
    const { summary } = await narOnly.end();
    assert.equal(summary.narHash, sha256Nix32(nar));
    assert.equal(summary.inputHash, undefined);
    narOnly.close();
    // A longer NAR than announced fails in the worker.
    const short = pool.openSession({ compression: 'xz', maxNarSize: nar.length - 1, listingCap: 0, urgent: true });
    await assert.rejects(
      (async () => {
        await short.input(Buffer.from(xz));
        await short.end();
      })(),
      { name: 'WorkerInputError', failure: 'too_large' },
    );
  } finally {
    await pool.close();
  }
});

test('a session reads its input from a file as it grows (xz, and a raw NAR it cuts), as from bytes sent to it', async () => {
  const { makeNar, deterministicBytes, sha256Nix32 } = await import('../../helpers/nar.ts');
  const { chunkBuffer, DEFAULT_CHUNKING } = await import('../../../src/chunking/fastcdc.ts');
  const { xzSync } = await import('node-liblzma');
  const { makeTempDir } = await import('../../helpers/tmp.ts');
  const { appendFile, writeFile } = await import('node:fs/promises');
  const tmp = await makeTempDir('loft-pool-file-');
  const nar = await makeNar({ big: deterministicBytes('from a file', 5_000_000), small: Buffer.from('x') });
  const pool = new ChunkWorkerPool({ threads: 1 });
  try {
    for (const [compression, file] of [['xz', xzSync(nar, { preset: 1 })], ['none', nar]] as const) {
      const path = `${tmp.path}/${compression}`;
      await writeFile(path, '');
      const session = pool.openSession({ compression, maxNarSize: nar.length, listingCap: 0, chunking: compression === 'none' ? DEFAULT_CHUNKING : undefined });
      const cut = [];
      // The file grows by uneven steps; each call reads up to what is in it so far.
      for (let at = 0, step = 1; at < file.length; step *= 3) {
        const next = Math.min(file.length, at + step * 1000);
        await appendFile(path, file.subarray(at, next));
        cut.push(...(await session.inputFile(path, next)));
        at = next;
      }
      const end = await session.end();
      cut.push(...end.chunks);
      session.close();
      assert.equal(end.summary.narHash, sha256Nix32(nar), compression);
      if (compression === 'none') assert.deepEqual(cut.map((c) => c.hash), chunkBuffer(nar).map(sha256), 'every chunk its own bytes');
    }
    const short = pool.openSession({ compression: 'none', maxNarSize: nar.length, listingCap: 0 });
    await assert.rejects(short.inputFile(`${tmp.path}/none`, nar.length + 1), /ends at/);
  } finally {
    await pool.close();
    await tmp.cleanup();
  }
});

test('a NAR session reports bad input as an input error, and the pool carries on', async () => {
  const pool = new ChunkWorkerPool({ threads: 1 });
  try {
    const bad = pool.openSession({ compression: 'none', maxNarSize: 1 << 20, listingCap: 1 << 20 });
    await assert.rejects(bad.input(Buffer.from('this is not a NAR at all')), { name: 'WorkerInputError', failure: 'invalid_nar' });
    const big = pool.openSession({ compression: 'none', maxNarSize: 10, listingCap: 1 << 20 });
    await assert.rejects(big.input(Buffer.alloc(11)), { name: 'WorkerInputError', failure: 'too_large' });
    assert.equal((await pool.compress(makeChunk(3), { hashStored: false })).size, makeChunk(3).length);
  } finally {
    await pool.close();
  }
});

test('a worker crash fails the sessions bound to it, not the others, and its replacement takes new ones', async () => {
  const workers: Worker[] = [];
  const onWorker = (w: Worker) => workers.push(w);
  process.on('worker', onWorker);
  const pool = new ChunkWorkerPool({ threads: 2 });
  try {
    await Promise.all([pool.compress(makeChunk(0), { hashStored: false }), pool.compress(makeChunk(1), { hashStored: false })]); // both workers up
    const open = () => pool.openSession({ compression: 'none', maxNarSize: 1 << 30, listingCap: 1 << 20 });
    const a = open();
    const b = open(); // the least busy worker: the other one
    const { makeNar } = await import('../../helpers/nar.ts');
    const nar = await makeNar({ f: 'content' });
    await a.input(Buffer.from(nar.subarray(0, 8)));
    await b.input(Buffer.from(nar.subarray(0, 8)));
    const replaced = once(process, 'worker');
    await workers[0].terminate();
    const failures = await Promise.allSettled([a.input(Buffer.from(nar.subarray(8))), b.input(Buffer.from(nar.subarray(8)))]);
    assert.equal(failures.filter((f) => f.status === 'rejected').length, 1, 'only the crashed worker’s session fails');
    const survivor = failures[0].status === 'fulfilled' ? a : b;
    assert.ok((await survivor.end()).summary.narSize === nar.length);
    await replaced;
    const c = open();
    await c.input(Buffer.from(nar));
    assert.equal((await c.end()).summary.narSize, nar.length);
  } finally {
    process.off('worker', onWorker);
    await pool.close();
  }
});

test('decodeFrames fails closed on stored bytes that do not match their hash', async () => {
  const pool = new ChunkWorkerPool({ threads: 1 });
  try {
    const data = makeChunk(7);
    const frame = zstdCompressSync(data, 3);
    const stored = { offset: 0, length: frame.length, hash: sha256(data), size: data.length, storedHash: sha256(frame) };
    assert.ok((await pool.decodeFrames(Buffer.from(frame), [stored], true)).equals(data));
    assert.ok((await pool.decodeFrames(Buffer.from(frame), [stored], false)).equals(frame));
    const flipped = Buffer.from(frame);
    flipped[5] ^= 1;
    await assert.rejects(pool.decodeFrames(flipped, [stored], false), { failure: 'corrupt', message: /is corrupt in storage/ });
  } finally {
    await pool.close();
  }
});
