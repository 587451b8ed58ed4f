import { crc32 } from 'node:zlib';
import {
  LZMA_BUF_ERROR,
  LZMA_DATA_ERROR,
  LZMA_FINISH,
  LZMA_FORMAT_ERROR,
  LZMA_MEM_ERROR,
  LZMA_MEMLIMIT_ERROR,
  LZMA_OK,
  LZMA_OPTIONS_ERROR,
  LZMA_RUN,
  LZMA_STREAM_END,
  Unxz,
} from 'node-liblzma';

const FOOTER_SIZE = 12;

/**
 * Checks that the input ends with a valid xz stream footer (after optional zero padding), which
 * a cut-short or garbage-suffixed file fails: liblzma, decoding concatenated streams, cannot tell
 * those from a stream still to come. Corruption inside is caught by liblzma's CRCs.
 */
class FooterCheck {
  #tail = Buffer.alloc(0); // last ≤ 12 bytes before the trailing run of zeros
  #zeroRun = 0;

  track(chunk: Buffer): void {
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

  error(): Error | undefined {
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

/** What XzStream's protected `lzma` (the native liblzma stream) offers; see node-liblzma's NativeLZMA. */
interface NativeXz {
  codeSync(flush: number, input: Buffer, inOff: number, availIn: number, out: Buffer, outOff: number): [status: number, availIn: number, availOut: number];
}

/** Unxz for its native liblzma decoder, driven directly. */
class NativeUnxz extends Unxz {
  get native(): NativeXz {
    return (this as unknown as { lzma: NativeXz }).lzma;
  }
}

/**
 * Synchronous xz decoding into one reused output buffer, for a worker thread: no thread-pool
 * round trip and no buffer allocated per output piece. push() the input, then take pieces with
 * next() until it returns undefined; each piece is valid only until the next call.
 */
export class XzSyncDecoder {
  readonly #handle = new NativeUnxz();
  readonly #out: Buffer;
  readonly #footer = new FooterCheck();
  #input: Buffer = Buffer.alloc(0);
  #offset = 0;
  #last = false;
  #ended = false;

  constructor(outputSize = 1024 * 1024) {
    this.#out = Buffer.allocUnsafe(outputSize);
  }

  push(input: Buffer, last = false): void {
    if (this.#offset < this.#input.length) throw new Error('XzSyncDecoder: push() before the previous input was taken');
    if (input.length > 0) this.#footer.track(input);
    this.#input = input;
    this.#offset = 0;
    this.#last = last;
  }

  next(): Buffer | undefined {
    while (!this.#ended) {
      const available = this.#input.length - this.#offset;
      if (available === 0 && !this.#last) return undefined;
      const [status, availIn, availOut] = this.#handle.native.codeSync(
        this.#last ? LZMA_FINISH : LZMA_RUN, this.#input, this.#offset, available, this.#out, 0,
      );
      if (status !== LZMA_OK && status !== LZMA_STREAM_END) throw new Error(`xz: ${xzStatus(status)}`);
      this.#offset += available - availIn;
      if (status === LZMA_STREAM_END) {
        this.#ended = true;
        const bad = this.#footer.error();
        if (bad || this.#offset < this.#input.length) throw bad ?? new Error('xz: trailing data after the end of the stream');
      }
      const used = this.#out.length - availOut;
      if (used > 0) return this.#out.subarray(0, used);
      if (!this.#ended && availIn === available && this.#last) throw new Error('xz: truncated input (the stream does not end)');
    }
    return undefined;
  }

  close(): void {
    this.#handle.close();
  }
}

const XZ_ERRORS: Record<number, string> = {
  [LZMA_MEM_ERROR]: 'cannot allocate memory',
  [LZMA_MEMLIMIT_ERROR]: 'memory usage limit reached',
  [LZMA_FORMAT_ERROR]: 'file format not recognized',
  [LZMA_OPTIONS_ERROR]: 'unsupported options',
  [LZMA_DATA_ERROR]: 'compressed data is corrupt',
  [LZMA_BUF_ERROR]: 'unexpected end of input',
};

function xzStatus(status: number): string {
  return XZ_ERRORS[status] ?? `liblzma error ${status}`;
}
