import { Transform, type TransformCallback } from 'node:stream';
import { crc32 } from 'node:zlib';

// An .xz file that holds its data uncompressed (xz file format 1.2.0: one block whose LZMA2
// data is only "uncompressed" chunks, integrity check None). Any xz decoder reads it, and it
// costs no CPU to write: Loft serves a stored NAR as `<narhash>.nar.xz` this way, the URL a
// pulled-through path's narinfo named while the upstream's own xz file was being passed on.

/** LZMA2 uncompressed chunks carry at most 64 KiB each, after a 3-byte header. */
const CHUNK = 64 * 1024;
const CHUNK_HEADER = 3;
const STREAM_FLAGS = Buffer.from([0x00, 0x00]); // check type None: the NAR hash is the check
const MAGIC = Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]);

function crcBytes(b: Buffer): Buffer {
  const out = Buffer.alloc(4);
  out.writeUInt32LE(crc32(b));
  return out;
}

function varint(n: number): number[] {
  const out: number[] = [];
  while (n >= 0x80) {
    out.push((n % 0x80) | 0x80);
    n = Math.floor(n / 0x80);
  }
  out.push(n);
  return out;
}

const padTo4 = (n: number) => (4 - (n % 4)) % 4;

const STREAM_HEADER = Buffer.concat([MAGIC, STREAM_FLAGS, crcBytes(STREAM_FLAGS)]);

/** Block header: its size, no optional sizes, one filter (LZMA2, 4 KiB dictionary), padding, CRC32. */
const BLOCK_HEADER = (() => {
  const fields = Buffer.from([0x02, 0x00, 0x21, 0x01, 0x00, 0x00, 0x00, 0x00]);
  return Buffer.concat([fields, crcBytes(fields)]);
})();

/** Bytes of LZMA2 data for `size` bytes of content: chunk headers, the data, the end marker. */
function lzma2Size(size: number): number {
  return size + CHUNK_HEADER * Math.ceil(size / CHUNK) + 1;
}

/** Everything after the LZMA2 data: the end marker, block padding, index and stream footer. */
function trailer(size: number): Buffer {
  const data = lzma2Size(size);
  const unpadded = BLOCK_HEADER.length + data;
  const fields = Buffer.from([0x00, ...varint(1), ...varint(unpadded), ...varint(size)]);
  const index = Buffer.concat([fields, Buffer.alloc(padTo4(fields.length))]);
  const indexWithCrc = Buffer.concat([index, crcBytes(index)]);
  const backward = Buffer.alloc(4);
  backward.writeUInt32LE(indexWithCrc.length / 4 - 1);
  const footerFields = Buffer.concat([backward, STREAM_FLAGS]);
  return Buffer.concat([
    Buffer.from([0x00]), // LZMA2 end marker
    Buffer.alloc(padTo4(data)),
    indexWithCrc,
    crcBytes(footerFields),
    footerFields,
    Buffer.from('YZ'),
  ]);
}

/** The length of the stored .xz file of `size` bytes. */
export function xzStoredLength(size: number): number {
  return STREAM_HEADER.length + BLOCK_HEADER.length + lzma2Size(size) - 1 + trailer(size).length;
}

/** Wraps exactly `size` bytes into a stored .xz file; more or fewer bytes is an error. */
export function createXzStoredStream(size: number): Transform {
  let seen = 0;
  let inChunk = 0; // bytes of the current LZMA2 chunk already passed on
  let started = false;
  return new Transform({
    transform(piece: Buffer, _encoding, done: TransformCallback) {
      if (!started) {
        started = true;
        this.push(Buffer.concat([STREAM_HEADER, BLOCK_HEADER]));
      }
      if (seen + piece.length > size) return done(new Error(`xz-stored: more than the ${size} bytes announced`));
      let at = 0;
      while (at < piece.length) {
        if (inChunk === 0) {
          const len = Math.min(CHUNK, size - seen - at);
          // 0x01: uncompressed, dictionary reset (the first chunk must reset it); 0x02: uncompressed.
          this.push(Buffer.from([seen + at === 0 ? 0x01 : 0x02, (len - 1) >> 8, (len - 1) & 0xff]));
        }
        const take = Math.min(piece.length - at, CHUNK - inChunk);
        this.push(piece.subarray(at, at + take));
        at += take;
        inChunk = (inChunk + take) % CHUNK;
      }
      seen += piece.length;
      done();
    },
    flush(done: TransformCallback) {
      if (seen !== size) return done(new Error(`xz-stored: ${seen} bytes, ${size} announced`));
      if (!started) this.push(Buffer.concat([STREAM_HEADER, BLOCK_HEADER]));
      this.push(trailer(size));
      done();
    },
  });
}
