// Property-based fuzzing of the chunk upload record parser (`[sha256][size u32][length u32][frame]`):
// any body is a 400/413 LoftError or records that re-encode to exactly the body; valid bodies split
// in any pieces parse to the records they were made of.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { chunkRecordHeader } from '../../src/client/http.ts';
import { readChunkRecords, type ChunkRecord } from '../../src/core/chunk-upload.ts';
import { LoftError } from '../../src/core/errors.ts';
import { fuzzParams } from './runs.ts';

const MAX_CHUNK = 4096;
const MAX_BYTES = 64 * 1024;

async function* pieces(body: Buffer, sizes: number[]): AsyncGenerator<Buffer> {
  for (let pos = 0, i = 0; pos < body.length; i++) {
    const n = Math.max(1, sizes[i % sizes.length]);
    yield body.subarray(pos, pos + n);
    pos += n;
  }
}

async function read(body: Buffer, sizes: number[]): Promise<ChunkRecord[] | LoftError> {
  const out: ChunkRecord[] = [];
  try {
    for await (const r of readChunkRecords(pieces(body, sizes), MAX_CHUNK, MAX_BYTES)) out.push(r);
    return out;
  } catch (e) {
    assert.ok(e instanceof LoftError && (e.kind === 'bad_request' || e.kind === 'payload_too_large'), `unexpected error: ${String(e)}`);
    return e;
  }
}

const encode = (records: ChunkRecord[]) => Buffer.concat(records.flatMap((r) => [chunkRecordHeader(r.hash, r.size, r.frame.length), r.frame]));

const recordArb = fc
  .record({ hash: fc.uint8Array({ minLength: 32, maxLength: 32 }), size: fc.integer({ min: 0, max: MAX_CHUNK }), frame: fc.uint8Array({ minLength: 1, maxLength: 64 }) })
  .map((r) => ({ hash: Buffer.from(r.hash).toString('hex'), size: r.size, frame: Buffer.from(r.frame) }));
const sizesArb = fc.array(fc.integer({ min: 1, max: 100 }), { minLength: 1, maxLength: 6 });

test('fuzz: well-formed record bodies parse to their records in any piece sizes', async () => {
  await fc.assert(
    fc.asyncProperty(fc.array(recordArb, { maxLength: 8 }), sizesArb, async (records, sizes) => {
      const got = await read(encode(records), sizes);
      assert.ok(Array.isArray(got), `refused a valid body: ${String(got)}`);
      assert.deepEqual(got, records);
    }),
    fuzzParams(500),
  );
});

test('fuzz: any body is refused with a 4xx error or is exactly the records it parsed to', async () => {
  const bodyArb = fc.oneof(
    fc.uint8Array({ maxLength: 300 }).map((b) => Buffer.from(b)),
    fc.tuple(fc.array(recordArb, { minLength: 1, maxLength: 4 }), fc.nat(), fc.integer({ min: 0, max: 255 }), fc.boolean()).map(([records, at, value, cut]) => {
      const body = Buffer.from(encode(records));
      const i = at % body.length;
      if (cut) return body.subarray(0, i);
      body[i] = value;
      return body;
    }),
  );
  await fc.assert(
    fc.asyncProperty(bodyArb, sizesArb, async (body, sizes) => {
      const got = await read(body, sizes);
      if (!Array.isArray(got)) return;
      assert.ok(encode(got).equals(body), 'accepted bytes that are not a sequence of records');
      for (const r of got) assert.ok(r.size <= MAX_CHUNK && r.frame.length > 0);
    }),
    fuzzParams(1000),
  );
});
