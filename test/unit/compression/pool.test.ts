import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
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

test('200 chunks compressed in parallel have correct hashes and frames', async () => {
  const pool = new ChunkWorkerPool({ threads: 2, level: 3 });
  try {
    const chunks = Array.from({ length: 200 }, (_, i) => makeChunk(i));
    const expected = chunks.map((c) => ({ hash: sha256(c), copy: Buffer.from(c) }));
    const results = await Promise.all(chunks.map((c) => pool.compress(c)));
    results.forEach((r, i) => {
      assert.equal(r.hash, expected[i].hash);
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
    const r = await pool.compress(view);
    assert.equal(r.hash, sha256(view));
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
      new RegExp(`^Error: chunk ${hash}: (content hash mismatch|not a valid zstd frame)`),
    );
    await assert.rejects(pool.verifyFrames([{ frame: frame.subarray(0, 20), hash, size: data.length }]), /not a valid zstd frame/);
    await assert.rejects(pool.verifyFrames([{ frame, hash, size: data.length - 1 }]), /not a valid zstd frame.*exceeds/);
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
      await pool.compress(makeChunk(0)); // the worker is up, so its death is a crash, not a failed start
      const pending = pool.compress(randomBytes(32 * 1024 * 1024));
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
      const hash = sha256(chunk);
      assert.equal((await pool.compress(chunk)).hash, hash);
      return;
    } finally {
      await pool.close();
    }
  }
});

test('close() rejects queued work and later calls', async () => {
  const pool = new ChunkWorkerPool({ threads: 1 });
  const queued = Array.from({ length: 5 }, (_, i) => pool.compress(makeChunk(i)));
  const settled = Promise.allSettled(queued);
  await pool.close();
  const outcomes = await settled;
  assert.ok(outcomes.some((o) => o.status === 'rejected'));
  await assert.rejects(pool.compress(makeChunk(0)), /closed/);
  await pool.close(); // idempotent
});
