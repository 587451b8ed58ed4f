import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Readable, Writable, type Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createBrotliCompress } from 'node:zlib';
import { createXz } from 'node-liblzma';
import { CompressStream } from 'zstd-napi';
import {
  compressionFromExtension,
  createDecompressor,
  extensionFor,
  type NixCompression,
} from '../../../src/compression/codecs.ts';
import { XzSyncDecoder } from '../../../src/compression/xz.ts';

/** 3 MB that compresses, but not trivially: random blocks between repeated text. */
const SAMPLE = Buffer.concat(
  Array.from({ length: 12 }, (_, i) =>
    i % 2 ? randomBytes(128 * 1024) : Buffer.from(`/nix/store/${i}-pkg/lib/libfoo.so.${i}\n`.repeat(3000)),
  ),
).subarray(0, 3_000_000);

function pieces(data: Buffer, size = 64 * 1024): Buffer[] {
  const out: Buffer[] = [];
  for (let off = 0; off < data.length; off += size) out.push(data.subarray(off, off + size));
  return out;
}

async function run(input: Buffer, transform: Transform): Promise<Buffer> {
  const parts: Buffer[] = [];
  await pipeline(
    Readable.from(pieces(input)),
    transform,
    new Writable({
      write(chunk: Buffer, _enc, cb) {
        parts.push(chunk);
        cb();
      },
    }),
  );
  return Buffer.concat(parts);
}

/** xz through XzSyncDecoder, fed in pieces of `pieceSize`; each output piece is copied before the next. */
async function unxz(input: Buffer, pieceSize = 64 * 1024): Promise<Buffer> {
  const decoder = new XzSyncDecoder(100_000);
  const parts: Buffer[] = [];
  const all = pieces(input, pieceSize);
  try {
    for (let i = 0; i <= all.length; i++) {
      decoder.push(all[i] ?? Buffer.alloc(0), i === all.length);
      for (let out; (out = decoder.next()); ) parts.push(Buffer.from(out));
    }
  } finally {
    decoder.close();
  }
  return Buffer.concat(parts);
}

/** Decoded by the codec's decoder: the streaming one, or XzSyncDecoder for xz. */
const decode = (input: Buffer, codec: NixCompression) => (codec === 'xz' ? unxz(input) : run(input, createDecompressor(codec)));

const compressors: Record<'xz' | 'zstd' | 'br', () => Transform> = {
  xz: () => createXz({ preset: 1 }) as unknown as Transform,
  zstd: () => new CompressStream({ compressionLevel: 3 }),
  br: () => createBrotliCompress(),
};

for (const [codec, makeCompressor] of Object.entries(compressors) as [NixCompression, () => Transform][]) {
  test(`${codec}: streaming round trip of 3 MB`, async () => {
    const compressed = await run(SAMPLE, makeCompressor());
    assert.ok(compressed.length < SAMPLE.length);
    assert.ok((await decode(compressed, codec)).equals(SAMPLE));
  });

  test(`${codec}: corrupt and truncated input are errors`, async () => {
    const compressed = await run(SAMPLE, makeCompressor());
    const truncated = compressed.subarray(0, compressed.length - 100);
    await assert.rejects(decode(truncated, codec));
    await assert.rejects(decode(compressed.subarray(0, compressed.length >> 1), codec));
    const corrupt = Buffer.from(compressed);
    for (let i = 0; i < 16; i++) corrupt[(corrupt.length >> 2) + i * 997] ^= 0xa5;
    corrupt[0] ^= 0xff; // the magic number, so every codec has to notice
    await assert.rejects(decode(corrupt, codec));
  });
}

test('none: passes bytes through', async () => {
  assert.ok((await run(SAMPLE, createDecompressor('none'))).equals(SAMPLE));
});

test('bzip2 is refused with a clear message', () => {
  assert.throws(() => createDecompressor('bzip2'), /bzip2 NARs are not supported; use compression=zstd or xz/);
});

test('NAR file extensions map to compressions and back', () => {
  const cases: [string, NixCompression][] = [
    ['x.nar', 'none'],
    ['nar/1w1fff338fvdw53sqgamddn1b2xgds473pv6y13gizdbqjv4i5p3.nar.xz', 'xz'],
    ['a.nar.zst', 'zstd'],
    ['a.nar.br', 'br'],
    ['a.nar.bz2', 'bzip2'],
  ];
  for (const [name, compression] of cases) {
    assert.equal(compressionFromExtension(name), compression);
    assert.equal(compressionFromExtension(`x.nar${extensionFor(compression)}`), compression);
  }
  assert.deepEqual(
    (['none', 'xz', 'zstd', 'br', 'bzip2'] as const).map(extensionFor),
    ['', '.xz', '.zst', '.br', '.bz2'],
  );
  for (const bad of ['a.nar.gz', 'a.xz', 'a.narinfo', 'a.nar.lz4', '']) {
    assert.throws(() => compressionFromExtension(bad), /unsupported NAR file extension/);
  }
});

test('xz: the synchronous decoder checks the footer across piece boundaries, allows padding and concatenation', async () => {
  const small = SAMPLE.subarray(0, 50_000);
  const xz = await run(small, compressors.xz());
  for (const size of [1, 7, 4096]) {
    assert.ok((await unxz(xz, size)).equals(small));
    assert.ok((await unxz(Buffer.concat([xz, Buffer.alloc(8)]), size)).equals(small)); // stream padding
    await assert.rejects(unxz(xz.subarray(0, xz.length - 1), size), /truncated input|unexpected end/);
    await assert.rejects(unxz(Buffer.concat([xz, Buffer.alloc(3)]), size)); // padding must be a multiple of 4
  }
  assert.ok((await unxz(Buffer.concat([xz, xz]), 4096)).equals(Buffer.concat([small, small])));
  await assert.rejects(unxz(Buffer.concat([xz, Buffer.from('junk')]), 4096));
  await assert.rejects(unxz(Buffer.alloc(0), 4096), /truncated input|unexpected end/);
  // A piece that decodes to more than the output buffer comes out in several pieces, in order.
  const large = SAMPLE.subarray(0, 1_000_000);
  assert.ok((await unxz(await run(large, compressors.xz()), 1_000_000)).equals(large));
});

test('zstd: trailing garbage after the last frame is an error', async () => {
  const zst = await run(SAMPLE, compressors.zstd());
  await assert.rejects(run(Buffer.concat([zst, Buffer.from('garbage!')]), createDecompressor('zstd')));
});
