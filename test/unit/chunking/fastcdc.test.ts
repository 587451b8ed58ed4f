import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import {
  DEFAULT_CHUNKING,
  FastCdcChunker,
  GEAR,
  chunkBuffer,
  validateChunkingParams,
  type ChunkingParams,
} from '../../../src/chunking/index.ts';

/** xorshift32 test data, independent of the chunker's gear PRNG. */
function pseudoRandom(size: number, seed: number): Buffer {
  let x = seed | 0 || 1;
  const out = Buffer.alloc(size);
  for (let i = 0; i < size; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

/** 8 MiB: random, repeated text and zeros, so every cut rule (maskS, maskL, max) is hit. */
function mixedInput(): Buffer {
  const text = Buffer.from('pub fn main() { println!("hello, nix store"); }\n'.repeat(22000)).subarray(0, 1024 * 1024);
  return Buffer.concat([
    pseudoRandom(3 * 1024 * 1024, 1),
    text,
    Buffer.alloc(1024 * 1024),
    pseudoRandom(3 * 1024 * 1024, 2),
  ]);
}

/** The textbook one-byte-per-step FastCDC over a whole buffer, written for clarity not speed. */
function referenceCuts(data: Uint8Array, p: ChunkingParams): number[] {
  const bits = Math.log2(p.avgSize);
  const top = (n: number) => (((1 << n) - 1) << (31 - n)) | 0;
  const maskS = top(bits + 2);
  const maskL = top(bits - 2);
  const lengths: number[] = [];
  let start = 0;
  while (start < data.length) {
    const remaining = data.length - start;
    let len = Math.min(remaining, p.maxSize);
    if (remaining > p.minSize) {
      let h = 0;
      for (let k = p.minSize; k < len; k++) {
        h = ((h << 1) + GEAR[data[start + k]]) | 0;
        if ((h & (k < p.avgSize ? maskS : maskL)) === 0) {
          len = k + 1;
          break;
        }
      }
    }
    lengths.push(len);
    start += len;
  }
  return lengths;
}

const lengths = (chunks: Buffer[]) => chunks.map((c) => c.length);
const sha256 = (b: Uint8Array | string) => createHash('sha256').update(b).digest('hex');

test('gear table is the documented splitmix32 sequence', () => {
  assert.equal(GEAR.length, 256);
  // First values for seed 0x4c6f6674; docs/chunking.md lists the same ones.
  assert.deepEqual(Array.from(GEAR.subarray(0, 4), (g) => (g >>> 0).toString(16).padStart(8, '0')), GOLDEN_GEAR_HEAD);
});

test('cut points are deterministic (golden value)', () => {
  const chunks = chunkBuffer(mixedInput(), DEFAULT_CHUNKING);
  const digest = sha256(lengths(chunks).join(','));
  assert.equal(chunks.length, GOLDEN_COUNT);
  assert.equal(digest, GOLDEN_LENGTHS_SHA256);
});

test('two-bytes-per-iteration loop gives the same cuts as the one-byte reference', () => {
  const data = mixedInput();
  assert.deepEqual(lengths(chunkBuffer(data, DEFAULT_CHUNKING)), referenceCuts(data, DEFAULT_CHUNKING));
  const small = { minSize: 64, avgSize: 256, maxSize: 1000 }; // odd max: exercises the single-byte tail
  const data2 = pseudoRandom(300_000, 9);
  assert.deepEqual(lengths(chunkBuffer(data2, small)), referenceCuts(data2, small));
});

test('cuts do not depend on how the input is split into push() calls', () => {
  const params = { minSize: 256, avgSize: 1024, maxSize: 4096 };
  const data = Buffer.concat([pseudoRandom(200_000, 3), Buffer.alloc(20_000), pseudoRandom(50_000, 4)]);
  const whole = chunkBuffer(data, params);

  const bytewise = new FastCdcChunker(params);
  const one: Buffer[] = [];
  for (let i = 0; i < data.length; i++) one.push(...bytewise.push(data.subarray(i, i + 1)));
  one.push(...bytewise.finish());
  assert.deepEqual(one, whole);

  const sizes = pseudoRandom(10_000, 5);
  const randomly = new FastCdcChunker(params);
  const random: Buffer[] = [];
  for (let off = 0, s = 0; off < data.length; s++) {
    const n = sizes[s % sizes.length] * 37; // 0..9435 bytes, including empty pushes
    random.push(...randomly.push(data.subarray(off, off + n)));
    off += n;
  }
  random.push(...randomly.finish());
  assert.deepEqual(random, whole);
});

test('chunks respect min and max, and concatenate back to the input', () => {
  const data = mixedInput();
  const chunks = chunkBuffer(data, DEFAULT_CHUNKING);
  chunks.forEach((c, i) => {
    if (i < chunks.length - 1) assert.ok(c.length >= DEFAULT_CHUNKING.minSize, `chunk ${i} is ${c.length} bytes`);
    assert.ok(c.length <= DEFAULT_CHUNKING.maxSize, `chunk ${i} is ${c.length} bytes`);
  });
  assert.ok(Buffer.concat(chunks).equals(data));
});

test('chunks own their whole ArrayBuffer (safe to transfer to a worker)', () => {
  for (const c of chunkBuffer(pseudoRandom(1024 * 1024, 6), DEFAULT_CHUNKING)) {
    assert.equal(c.byteOffset, 0);
    assert.equal(c.byteLength, c.buffer.byteLength);
  }
});

test('all-zero input is cut at maxSize', () => {
  const chunks = chunkBuffer(Buffer.alloc(1024 * 1024 + 5), DEFAULT_CHUNKING);
  assert.deepEqual(lengths(chunks), [262144, 262144, 262144, 262144, 5]);
});

test('empty input gives no chunks; input shorter than min gives one', () => {
  assert.deepEqual(chunkBuffer(Buffer.alloc(0), DEFAULT_CHUNKING), []);
  const short = pseudoRandom(1000, 7);
  const chunks = chunkBuffer(short, DEFAULT_CHUNKING);
  assert.equal(chunks.length, 1);
  assert.ok(chunks[0].equals(short));
});

test('an insertion in the middle changes at most 3 chunks', () => {
  const data = pseudoRandom(4 * 1024 * 1024, 8);
  const mid = data.length / 2;
  const edited = Buffer.concat([data.subarray(0, mid), Buffer.from('0123456789'), data.subarray(mid)]);
  const before = new Set(chunkBuffer(data, DEFAULT_CHUNKING).map((c) => sha256(c)));
  const after = chunkBuffer(edited, DEFAULT_CHUNKING).map((c) => sha256(c));
  const changed = after.filter((h) => !before.has(h)).length;
  assert.ok(changed >= 1 && changed <= 3, `${changed} chunks changed`);
});

test('mean chunk size on random data is within ±35% of avgSize', () => {
  const data = pseudoRandom(16 * 1024 * 1024, 10);
  const mean = data.length / chunkBuffer(data, DEFAULT_CHUNKING).length;
  const avg = DEFAULT_CHUNKING.avgSize;
  assert.ok(mean > avg * 0.65 && mean < avg * 1.35, `mean ${mean}`);
});

test('invalid parameters are rejected with a clear message', () => {
  const bad: [ChunkingParams, RegExp][] = [
    [{ minSize: 32, avgSize: 64, maxSize: 128 }, /minSize must be at least 64/],
    [{ minSize: 1024, avgSize: 4096, maxSize: 32 * 1024 * 1024 }, /maxSize must be at most/],
    [{ minSize: 8192, avgSize: 4096, maxSize: 65536 }, /minSize < avgSize < maxSize/],
    [{ minSize: 1024, avgSize: 65536, maxSize: 65536 }, /minSize < avgSize < maxSize/],
    [{ minSize: 1024, avgSize: 5000, maxSize: 65536 }, /avgSize must be a power of two/],
    [{ minSize: 1024.5, avgSize: 4096, maxSize: 65536 }, /minSize must be an integer/],
  ];
  for (const [params, message] of bad) {
    assert.throws(() => validateChunkingParams(params), message);
    assert.throws(() => new FastCdcChunker(params), message);
  }
  assert.doesNotThrow(() => validateChunkingParams(DEFAULT_CHUNKING));
});

const GOLDEN_GEAR_HEAD = ['470d7708', '257247ab', '6ff15f77', '054675aa'];
// sha256 of the chunk lengths joined with ',' ("76734,117329,72535,…,50483").
const GOLDEN_COUNT = 91;
const GOLDEN_LENGTHS_SHA256 = 'bda0229caa85c07445f82c2c5b5dc5fc55229164559459b78d33d36cc7397e05';
