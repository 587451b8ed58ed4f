// Worker side of an ingest or verification session: everything that costs CPU
// per byte of a NAR (decompressing the upload, validating the NAR, hashing it,
// FastCDC, per-chunk SHA-256, the listing, the served file's hash) runs here,
// in one worker thread per session, so the event loop only moves bytes.
import { createHash, type Hash } from 'node:crypto';
import { closeSync, openSync, readSync } from 'node:fs';
import type { Transform } from 'node:stream';
import { finished } from 'node:stream/promises';
import { FastCdcChunker } from '../chunking/fastcdc.ts';
import { buildListing } from '../nix/nar/listing.ts';
import { NarParser } from '../nix/nar/parser.ts';
import type { NarEntry } from '../nix/nar/types.ts';
import { formatSha256Nix32 } from '../nix/hash.ts';
import { createDecompressor } from './codecs.ts';
import type { CutChunk, FailureKind, NarSummary, PackedFrame, SessionOptions } from './pool-protocol.ts';
import { XzSyncDecoder } from './xz.ts';
import { Scratch, zstdDecompressInto } from './zstd.ts';

/** An error that is the input's fault, tagged so the server can answer 4xx. */
export class InputError extends Error {
  constructor(
    readonly failure: FailureKind,
    message: string,
  ) {
    super(message);
  }
}

/** Decompressed bytes that never count against the expansion ratio: small NARs compress as they like. */
const EXPANSION_FREE_BYTES = 64 * 1024 * 1024;

/** Reads of an 'inputFile' call. */
const FILE_PIECE = 1024 * 1024;

/** Output buffer of the xz decoder. */
const XZ_OUTPUT_PIECE = 1024 * 1024;

/** Rough JSON bytes per listing entry beyond its path, to drop an oversized listing early. */
const ENTRY_OVERHEAD = 64;

export class NarSession {
  readonly #o: SessionOptions;
  readonly #parser = new NarParser();
  #parseError: Error | undefined;
  readonly #narHasher = createHash('sha256');
  #narSize = 0;
  readonly #chunker: FastCdcChunker | undefined;
  #out: CutChunk[] = [];
  #entries: NarEntry[] | null = [];
  #listingBytes = 0;
  readonly #inputHasher: Hash | undefined;
  readonly #decoder: Transform | undefined;
  /** The file of 'inputFile' calls, and how far it has been read. */
  #file: { fd: number; offset: number } | undefined;
  /** xz is decoded on this thread (XzSyncDecoder); the other codecs are streams. */
  readonly #xz: XzSyncDecoder | undefined;
  #decoded: Buffer[] = [];
  #inputBytes = 0;
  #decodedBytes = 0;
  #decodeError: Error | undefined;
  #decoderFailed: Promise<never> = new Promise(() => {});
  readonly #fileHasher = createHash('sha256');
  #fileSize = 0;
  readonly #scratch = new Scratch();

  constructor(o: SessionOptions) {
    this.#o = o;
    this.#chunker = o.chunking ? new FastCdcChunker(o.chunking) : undefined;
    this.#parser.on('error', (e) => (this.#parseError ??= e));
    this.#parser.on('entry', (e: NarEntry) => this.#entry(e));
    if (o.compression !== 'none' && o.hashInput !== false) this.#inputHasher = createHash('sha256');
    if (o.compression === 'xz') this.#xz = new XzSyncDecoder(XZ_OUTPUT_PIECE);
    else if (o.compression !== 'none') {
      let decoder: Transform;
      try {
        decoder = createDecompressor(o.compression);
      } catch (e) {
        throw new InputError('codec', (e as Error).message);
      }
      decoder.on('data', (d: Buffer) => {
        this.#decodedBytes += d.length;
        const bomb = this.#expandsTooMuch();
        if (bomb) decoder.destroy(bomb); // before the output piles up in memory
        else this.#decoded.push(d);
      });
      // Some decoders never call a write back once they have failed: waits race this.
      this.#decoderFailed = new Promise((_, reject) => decoder.on('error', (e) => reject((this.#decodeError ??= e))));
      this.#decoderFailed.catch(() => {});
      this.#decoder = decoder;
    }
  }

  async input(data: Buffer): Promise<CutChunk[]> {
    if (this.#o.compression === 'none') {
      await this.#nar(data);
      return this.#take();
    }
    this.#inputHasher?.update(data);
    this.#inputBytes += data.length;
    if (this.#xz) {
      this.#xz.push(data);
      await this.#drainXz();
    } else {
      await this.#decoding(new Promise<void>((resolve) => this.#decoder!.write(data, () => resolve())));
      // Native decoders deliver their output after the write completes.
      await new Promise((resolve) => setImmediate(resolve));
      await this.#drainDecoded();
    }
    return this.#take();
  }

  /** SessionCall 'inputFile': reads are fed to input() in pieces, into one reused buffer where nothing keeps them. */
  async inputFile(path: string, end: number): Promise<CutChunk[]> {
    this.#file ??= { fd: openSync(path, 'r'), offset: 0 };
    const f = this.#file;
    // One buffer serves every read when input() is done with its bytes once it returns: xz (decoded
    // on this thread), or a raw NAR that is not cut. A stream decoder (zstd, br) may hold its input
    // after the write, and the chunker holds a raw NAR's bytes: they get buffers of their own.
    const reuse = this.#xz !== undefined || (!this.#decoder && !this.#chunker);
    const cut: CutChunk[] = [];
    while (f.offset < end) {
      const into = reuse ? this.#scratch.take(FILE_PIECE) : Buffer.allocUnsafe(FILE_PIECE);
      const n = readSync(f.fd, into, 0, Math.min(FILE_PIECE, end - f.offset), f.offset);
      if (n === 0) throw new Error(`${path} ends at ${f.offset} bytes, before ${end}`);
      f.offset += n;
      cut.push(...(await this.input(into.subarray(0, n))));
    }
    return cut;
  }

  /** Closes the input file and the xz decoder, if any (a session that failed or is dropped). */
  dispose(): void {
    if (this.#file) closeSync(this.#file.fd);
    this.#file = undefined;
    this.#xz?.close();
  }

  /** Bytes of the served file; with `frames`, each one is also decompressed into the NAR (commit verification). */
  async served(data: Buffer, frames?: PackedFrame[]): Promise<void> {
    this.#fileHasher.update(data);
    this.#fileSize += data.length;
    for (const f of frames ?? []) {
      const frame = data.subarray(f.offset, f.offset + f.length);
      // The parser and hashers keep nothing of what they are given, so one buffer serves every frame.
      const plain = this.#scratch.take(f.size);
      let held: number;
      try {
        held = zstdDecompressInto(frame, plain);
      } catch (e) {
        throw new InputError('bad_frame', `chunk ${f.hash}: ${(e as Error).message}`);
      }
      if (held !== f.size) throw new InputError('bad_frame', `chunk ${f.hash}: declared ${f.size} bytes, the frame holds ${held}`);
      await this.#nar(plain);
    }
  }

  async end(): Promise<{ chunks: CutChunk[]; summary: NarSummary }> {
    if (this.#xz) {
      this.#xz.push(Buffer.alloc(0), true);
      await this.#drainXz();
      this.#xz.close();
    }
    if (this.#decoder) {
      this.#decoder.end();
      await this.#decoding(finished(this.#decoder));
      await this.#drainDecoded();
    }
    const ended = await new Promise<Error | null | undefined>((resolve) => this.#parser.end(resolve));
    this.#parseError ??= ended ?? undefined;
    if (this.#parseError) throw new InputError('invalid_nar', this.#parseError.message);
    if (this.#chunker) this.#cut(this.#chunker.finish());
    const listing = this.#entries && JSON.stringify(buildListing(this.#entries));
    return {
      chunks: this.#take(),
      summary: {
        narHash: formatSha256Nix32(this.#narHasher.digest()),
        narSize: this.#narSize,
        inputHash: this.#inputHasher?.digest('hex'),
        listing: listing !== null && listing.length <= this.#o.listingCap ? listing : null,
      },
    };
  }

  digest(): { fileHash: string; fileSize: number } {
    return { fileHash: formatSha256Nix32(this.#fileHasher.digest()), fileSize: this.#fileSize };
  }

  /**
   * A too_large error once the output outgrows maxExpansionRatio times the input (past the free
   * allowance): a decompression bomb is refused after bounded work, not when it reaches maxNarSize.
   */
  #expandsTooMuch(): InputError | undefined {
    const ratio = this.#o.maxExpansionRatio ?? 0;
    const out = this.#decodedBytes;
    if (ratio <= 0 || out <= EXPANSION_FREE_BYTES || out <= ratio * this.#inputBytes) return undefined;
    return new InputError(
      'too_large',
      `${this.#o.inputName ?? 'the upload'} expands more than ${ratio} times (${out} bytes from ${this.#inputBytes}); refused as a decompression bomb (limits.max_expansion_ratio)`,
    );
  }

  /** Waits for the decoder, failing with its error as an InputError. */
  async #decoding(step: Promise<void>): Promise<void> {
    try {
      await Promise.race([step, this.#decoderFailed]);
    } catch (e) {
      throw asInputError(e as Error);
    }
  }

  /** Decoded xz output, piece by piece: each is consumed before the decoder reuses its buffer. */
  async #drainXz(): Promise<void> {
    for (;;) {
      let piece: Buffer | undefined;
      try {
        piece = this.#xz!.next();
      } catch (e) {
        throw asInputError(e as Error);
      }
      if (!piece) return;
      this.#decodedBytes += piece.length;
      const bomb = this.#expandsTooMuch();
      if (bomb) throw bomb;
      // The chunker keeps what it is given until it cuts it: it gets a copy.
      await this.#nar(this.#chunker ? Buffer.from(piece) : piece);
    }
  }

  async #drainDecoded(): Promise<void> {
    if (this.#decodeError) throw asInputError(this.#decodeError);
    const pieces = this.#decoded;
    this.#decoded = [];
    for (const p of pieces) await this.#nar(p);
  }

  async #nar(data: Buffer): Promise<void> {
    this.#narSize += data.length;
    if (this.#narSize > this.#o.maxNarSize) {
      throw new InputError('too_large', `NAR exceeds the server limit of ${this.#o.maxNarSize} bytes`);
    }
    this.#narHasher.update(data);
    const failed = await new Promise<Error | null | undefined>((resolve) => this.#parser.write(data, resolve));
    this.#parseError ??= failed ?? undefined;
    if (this.#parseError) throw new InputError('invalid_nar', this.#parseError.message);
    if (this.#chunker) this.#cut(this.#chunker.push(data));
  }

  #cut(chunks: Buffer[]): void {
    for (const data of chunks) this.#out.push({ hash: createHash('sha256').update(data).digest('hex'), size: data.length, data });
  }

  #take(): CutChunk[] {
    const out = this.#out;
    this.#out = [];
    return out;
  }

  #entry(e: NarEntry): void {
    if (!this.#entries) return;
    this.#listingBytes += e.path.length + ENTRY_OVERHEAD + (e.type === 'symlink' ? e.target.length : 0);
    if (this.#listingBytes > this.#o.listingCap) this.#entries = null;
    else this.#entries.push(e);
  }
}

/** A decoder failure is a codec error, unless it is already tagged (the expansion limit). */
function asInputError(e: Error): InputError {
  return e instanceof InputError ? e : new InputError('codec', e.message);
}
