import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { DEFAULT_CHUNKING, chunkBuffer, createChunkStream } from '../../../src/chunking/index.ts';

test('the stream yields the same chunks as chunkBuffer', async () => {
  const data = randomBytes(3 * 1024 * 1024);
  const pieces = [];
  for (let off = 0; off < data.length; off += 100_003) pieces.push(data.subarray(off, off + 100_003));
  const chunks: Buffer[] = [];
  await pipeline(Readable.from(pieces), createChunkStream(DEFAULT_CHUNKING), async (source: AsyncIterable<Buffer>) => {
    for await (const chunk of source) chunks.push(chunk);
  });
  assert.deepEqual(chunks, chunkBuffer(data, DEFAULT_CHUNKING));
});

test('the stream applies backpressure when chunks are not read', async () => {
  const stream = createChunkStream(DEFAULT_CHUNKING);
  let accepted = 0;
  // Zeros cut at maxSize, so each 256 KiB write completes one chunk.
  while (stream.write(Buffer.alloc(DEFAULT_CHUNKING.maxSize)) && accepted < 1000) accepted++;
  assert.ok(accepted < 20, `accepted ${accepted} writes without a reader`);
  stream.destroy();
});

test('empty input ends the stream without chunks', async () => {
  const chunks: Buffer[] = [];
  await pipeline(Readable.from([]), createChunkStream(DEFAULT_CHUNKING), async (source: AsyncIterable<Buffer>) => {
    for await (const chunk of source) chunks.push(chunk);
  });
  assert.deepEqual(chunks, []);
});
