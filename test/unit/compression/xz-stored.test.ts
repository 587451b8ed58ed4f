import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { XzSyncDecoder } from '../../../src/compression/xz.ts';
import { createXzStoredStream, xzStoredLength } from '../../../src/compression/xz-stored.ts';

/** The data cut into pieces of varying sizes, none aligned to the 64 KiB chunks. */
function cut(data: Buffer): Buffer[] {
  const out: Buffer[] = [];
  for (let at = 0, i = 0; at < data.length; i++) {
    const n = [1, 7000, 65536, 100_003, 3][i % 5];
    out.push(data.subarray(at, at + n));
    at += n;
  }
  return out;
}

const wrap = (data: Buffer) => buffer(Readable.from(cut(data)).pipe(createXzStoredStream(data.length)));

for (const size of [0, 1, 65_535, 65_536, 65_537, 3 * 65_536, 1_000_000]) {
  test(`a stored .xz of ${size} bytes has the announced length and decompresses to its data (liblzma and xz)`, async () => {
    const data = randomBytes(size);
    const xz = await wrap(data);
    assert.equal(xz.length, xzStoredLength(size));
    const decoder = new XzSyncDecoder();
    decoder.push(xz, true);
    const out: Buffer[] = [];
    for (let piece; (piece = decoder.next()); ) out.push(Buffer.from(piece));
    decoder.close();
    assert.ok(Buffer.concat(out).equals(data), "Loft's checked decoder");
    assert.ok(execFileSync('xz', ['-dc'], { input: xz, maxBuffer: 1 << 26 }).equals(data), 'xz -dc');
    execFileSync('xz', ['-t'], { input: xz }); // the index and footer are valid too
  });
}

test('a stored .xz stream refuses more or fewer bytes than announced', async () => {
  await assert.rejects(buffer(Readable.from([randomBytes(10)]).pipe(createXzStoredStream(9))), /more than the 9 bytes/);
  await assert.rejects(buffer(Readable.from([randomBytes(10)]).pipe(createXzStoredStream(11))), /10 bytes, 11 announced/);
});
