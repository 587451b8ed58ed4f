import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { compress } from 'zstd-napi';
import binding from 'zstd-napi/binding.js';
import {
  createZstdDecompressStream,
  zstdCompressSync,
  zstdDecompressSync,
} from '../../../src/compression/zstd.ts';

const DATA = Buffer.concat([randomBytes(200_000), Buffer.from('abc'.repeat(300_000))]);

test('zstdCompressSync writes one frame that records its content size', () => {
  const frame = zstdCompressSync(DATA, 3);
  assert.equal(binding.getFrameContentSize(frame), DATA.length);
  assert.equal(binding.findFrameCompressedSize(frame), frame.length);
  assert.ok(zstdDecompressSync(frame, DATA.length).equals(DATA));
  assert.ok(zstdDecompressSync(zstdCompressSync(DATA, 9), DATA.length).equals(DATA));
  assert.equal(zstdDecompressSync(zstdCompressSync(Buffer.alloc(0), 3), 0).length, 0);
});

test('zstdDecompressSync refuses output above maxSize (bomb guard)', () => {
  const bomb = zstdCompressSync(Buffer.alloc(64 * 1024 * 1024), 3);
  assert.ok(bomb.length < 64 * 1024);
  assert.throws(() => zstdDecompressSync(bomb, 1024 * 1024), /exceeds the limit of 1048576 bytes/);
  // A frame without a declared size is decoded stepwise and stopped at the limit too.
  const frame = Buffer.concat([zstdCompressSync(Buffer.alloc(10), 3), unsizedFrame(Buffer.alloc(8 * 1024 * 1024))]);
  assert.equal(binding.getFrameContentSize(frame.subarray(binding.findFrameCompressedSize(frame))), null);
  assert.throws(() => zstdDecompressSync(frame, 1024 * 1024), /exceeds the limit/);
  assert.equal(zstdDecompressSync(frame, 8 * 1024 * 1024 + 10).length, 8 * 1024 * 1024 + 10);
});

test('zstdDecompressSync rejects truncated, corrupt, trailing and empty input', () => {
  const frame = zstdCompressSync(DATA, 3);
  assert.throws(() => zstdDecompressSync(frame.subarray(0, frame.length - 1), 1e8));
  assert.throws(() => zstdDecompressSync(frame.subarray(0, 3), 1e8));
  assert.throws(() => zstdDecompressSync(Buffer.concat([frame, Buffer.from([0x28, 0xb5])]), 1e8));
  assert.throws(() => zstdDecompressSync(Buffer.concat([frame, Buffer.from('trailing')]), 1e8));
  assert.throws(() => zstdDecompressSync(Buffer.from('not zstd at all'), 1e8));
  assert.throws(() => zstdDecompressSync(Buffer.alloc(0), 1e8), /empty input/);
  const unsized = unsizedFrame(DATA);
  assert.throws(() => zstdDecompressSync(unsized.subarray(0, unsized.length - 5), 1e8), /truncated/);
});

test('concatenated frames decode as one stream (sync, streaming and the zstd CLI)', async () => {
  const parts = [DATA.subarray(0, 100_000), DATA.subarray(100_000, 100_001), DATA.subarray(100_001)];
  const nar = Buffer.concat(parts.map((p) => zstdCompressSync(p, 3)));
  assert.ok(zstdDecompressSync(nar, DATA.length).equals(DATA));

  const out: Buffer[] = [];
  const pieces = [];
  for (let off = 0; off < nar.length; off += 4099) pieces.push(nar.subarray(off, off + 4099));
  await pipeline(Readable.from(pieces), createZstdDecompressStream(), async (source: AsyncIterable<Buffer>) => {
    for await (const b of source) out.push(b);
  });
  assert.ok(Buffer.concat(out).equals(DATA));

  const cli = execFileSync('zstd', ['-d', '-c', '-q'], { input: nar, maxBuffer: 64 * 1024 * 1024 });
  assert.ok(cli.equals(DATA));
});

test('the streaming decoder errors on a frame cut short', async () => {
  const frame = zstdCompressSync(DATA, 3);
  const drain = async (source: AsyncIterable<Buffer>) => {
    for await (const _ of source);
  };
  await assert.rejects(pipeline(Readable.from([frame.subarray(0, frame.length - 7)]), createZstdDecompressStream(), drain));
});

/** A frame as a streaming compressor writes it: no content size in the header. */
function unsizedFrame(data: Buffer): Buffer {
  return compress(data, { contentSizeFlag: false });
}
