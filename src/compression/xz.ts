import type { Transform, TransformCallback } from 'node:stream';
import { crc32 } from 'node:zlib';
import { Unxz } from 'node-liblzma';

const FOOTER_SIZE = 12;

/**
 * node-liblzma's Unxz ends quietly on truncated input (and ignores trailing garbage),
 * because it stops calling liblzma before LZMA_BUF_ERROR. This subclass also checks
 * that the input ends with a valid xz stream footer (after optional zero padding), which
 * a cut-short or garbage-suffixed file fails. Corruption inside is caught by liblzma's CRCs.
 */
class CheckedUnxz extends Unxz {
  #tail = Buffer.alloc(0); // last ≤ 12 bytes before the trailing run of zeros
  #zeroRun = 0;

  override _transform(chunk: Buffer | null, encoding: string, callback: (error?: Error) => void): void {
    if (chunk && chunk.length > 0) this.#track(chunk);
    super._transform(chunk, encoding, callback);
  }

  override _flush(callback: TransformCallback): void {
    super._flush(() => callback(this.#footerError()));
  }

  #track(chunk: Buffer): void {
    let last = chunk.length - 1;
    while (last >= 0 && chunk[last] === 0) last--;
    if (last < 0) {
      this.#zeroRun += chunk.length;
      return;
    }
    const zeros = Buffer.alloc(Math.min(this.#zeroRun, FOOTER_SIZE));
    const joined = Buffer.concat([this.#tail, zeros, chunk.subarray(Math.max(0, last + 1 - FOOTER_SIZE), last + 1)]);
    this.#tail = Buffer.from(joined.subarray(Math.max(0, joined.length - FOOTER_SIZE)));
    this.#zeroRun = chunk.length - 1 - last;
  }

  #footerError(): Error | undefined {
    const t = this.#tail;
    const valid =
      t.length === FOOTER_SIZE &&
      this.#zeroRun % 4 === 0 &&
      t[10] === 0x59 && // 'Y'
      t[11] === 0x5a && // 'Z'
      t.readUInt32LE(0) === crc32(t.subarray(4, 10));
    return valid ? undefined : new Error('xz: truncated input or trailing garbage (no valid stream footer at the end)');
  }
}

/** `chunkSize`: bytes of each output piece (node-liblzma's default, 8 KiB, costs a thread-pool round trip per 8 KiB). */
export function createXzDecompressStream(chunkSize?: number): Transform {
  // Unxz is a Transform at runtime; its typings only narrow `on()` incompatibly.
  return new CheckedUnxz(chunkSize ? { chunkSize } : undefined) as unknown as Transform;
}
