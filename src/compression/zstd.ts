import type { Transform } from 'node:stream';
import { DecompressStream } from 'zstd-napi';
import binding from 'zstd-napi/binding.js';

// Chunks go through zstd's one-shot functions, which hold no native object: zstd-napi's context
// objects release their memory accounting in a finalizer that throws (and aborts the process:
// "terminate called after throwing an instance of 'Napi::Error'") when it runs while a worker is
// being terminated. A streaming context is made only for frames without a content size (and the
// streaming decoder only for `nix copy` uploads), which keeps that hazard off the chunk paths.
let streamingDctx: InstanceType<typeof binding.DCtx> | undefined;

// Output grows in steps of this size when frames do not declare their content size.
const STREAM_STEP = 1024 * 1024;

/** One frame whose header records the content size, so readers can size the output exactly. */
export function zstdCompressSync(data: Uint8Array, level: number): Buffer {
  const out = compressScratch.take(binding.compressBound(data.length));
  const n = binding.compress(out, data, level); // ZSTD_compress records the content size
  const frame = Buffer.allocUnsafeSlow(n);
  out.copy(frame, 0, 0, n);
  return frame;
}

/**
 * Decompresses one or more complete, concatenated frames. Throws on anything else
 * (corrupt, truncated or trailing bytes) and when the output would exceed maxSize,
 * without ever allocating more than maxSize (zip-bomb guard).
 */
export function zstdDecompressSync(frames: Uint8Array, maxSize: number): Buffer {
  const declared = declaredContentSize(frames);
  if (declared !== null) {
    if (declared > maxSize) throw new Error(`zstd: content size ${declared} exceeds the limit of ${maxSize} bytes`);
    const out = Buffer.allocUnsafe(declared);
    decompressDeclared(frames, out);
    return out;
  }
  return decompressUnknownSize(frames, maxSize);
}

/**
 * Decompresses one or more complete frames into `out` when they hold exactly `out.length` bytes
 * (a reused buffer: nothing is allocated when the frames declare their size, as Loft's do), and
 * returns the size they hold; another size leaves `out` alone. Throws like zstdDecompressSync.
 */
export function zstdDecompressInto(frames: Uint8Array, out: Buffer): number {
  const declared = declaredContentSize(frames);
  if (declared === null) {
    const data = decompressUnknownSize(frames, out.length);
    if (data.length === out.length) data.copy(out);
    return data.length;
  }
  if (declared !== out.length) return declared;
  decompressDeclared(frames, out);
  return declared;
}

/** Frames whose headers declare `out.length` bytes in all; fails if they do not decode to exactly that. */
function decompressDeclared(frames: Uint8Array, out: Buffer): void {
  const written = binding.decompress(out, frames);
  if (written !== out.length) throw new Error(`zstd: decoded ${written} bytes, header declared ${out.length}`);
}

/** A buffer of at least `size` bytes reused by its owner between calls (decompression scratch). */
export class Scratch {
  #buf = Buffer.alloc(0);

  /** A view of `size` bytes, valid until the next call. */
  take(size: number): Buffer {
    if (this.#buf.length < size) this.#buf = Buffer.allocUnsafeSlow(Math.max(size, 2 * this.#buf.length, 256 * 1024));
    return this.#buf.subarray(0, size);
  }
}

/** Compression output for one chunk at a time, copied out at its exact size. */
const compressScratch = new Scratch();

/** Sum of the frames' declared sizes, or null if any frame omits it. Throws on a malformed frame. */
function declaredContentSize(frames: Uint8Array): number | null {
  if (frames.length === 0) throw new Error('zstd: empty input is not a frame');
  let total = 0;
  let rest = frames;
  while (rest.length > 0) {
    const size = binding.getFrameContentSize(rest);
    if (size === null) return null;
    total += size;
    rest = rest.subarray(binding.findFrameCompressedSize(rest));
  }
  return total;
}

/** Frames from streaming compressors carry no size: decode in steps, capped at maxSize. */
function decompressUnknownSize(frames: Uint8Array, maxSize: number): Buffer {
  const dctx = (streamingDctx ??= new binding.DCtx());
  dctx.reset(binding.ResetDirective.sessionOnly);
  const parts: Buffer[] = [];
  let total = 0;
  let rest = frames;
  let ret = 1;
  while (rest.length > 0 || ret !== 0) {
    // One byte of headroom tells "exactly maxSize" apart from "more than maxSize".
    const room = Math.min(STREAM_STEP, maxSize - total + 1);
    const out = Buffer.allocUnsafe(room);
    const [hint, produced, consumed] = dctx.decompressStream(out, rest);
    ret = hint;
    total += produced;
    if (total > maxSize) throw new Error(`zstd: decompressed data exceeds the limit of ${maxSize} bytes`);
    if (produced === 0 && consumed === 0) throw new Error('zstd: truncated frame');
    parts.push(out.subarray(0, produced));
    rest = rest.subarray(consumed);
  }
  return Buffer.concat(parts, total);
}

/** Streaming decoder; accepts concatenated frames and errors on a frame cut short. */
export function createZstdDecompressStream(): Transform {
  return new DecompressStream();
}
