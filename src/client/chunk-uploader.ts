import type { ChunkWorkerPool } from '../compression/pool.ts';
import { chunkRecordHeader, type LoftClient } from './http.ts';

/** A chunk to upload: its content hash (sha256 hex) and bytes. */
export interface UploadChunk {
  hash: string;
  data: Buffer;
}

export interface ChunkUploaderOptions {
  /** Bytes of one upload request; the server stores each request's new chunks as one pack. */
  requestBytes: number;
  /** Requests in flight at once (default 1: one is sent while the next one fills). */
  parallel?: number;
  pool: ChunkWorkerPool;
  signal?: AbortSignal;
  /** Called when a request succeeds, with its chunk count and body size. */
  onSent?: (chunks: number, bytes: number) => void;
}

/**
 * How long records wait for more company once a NAR needs them stored (its
 * commit waits on them) while other NARs are still being read. Without such
 * waits every NAR's tail would become a request, and a pack, of its own.
 */
const LINGER_MS = 250;

/**
 * Uploads chunk records for every NAR of one push in shared requests of up to
 * `requestBytes`, so the server's packs are as large as the requests allow
 * whatever the NAR sizes. Chunks are compressed on the pool and written into
 * a request buffer (one filling, `parallel` in flight, buffers reused), which
 * bounds the memory: (parallel + 1) × requestBytes plus the compressions queued.
 *
 * A request is sent when it is full, when no NAR is adding chunks any more, or
 * LINGER_MS after a NAR started waiting on it. Each NAR uploads through a
 * stream, whose settled() says its chunks are stored (or fails with the first
 * request that carried any of them).
 */
export class ChunkUploader {
  readonly #o: Required<Omit<ChunkUploaderOptions, 'signal' | 'onSent'>> & Pick<ChunkUploaderOptions, 'signal' | 'onSent'>;
  readonly #free: Buffer[] = [];
  #filling: Batch | undefined;
  readonly #inFlight = new Set<Promise<void>>();
  /** Streams that may still add chunks (not waiting in settled()). */
  #producing = 0;
  #linger: NodeJS.Timeout | undefined;
  /** Appends run one at a time, in call order, so a request's records are never interleaved mid-write. */
  #appending: Promise<void> = Promise.resolve();

  constructor(
    private readonly client: LoftClient,
    private readonly cache: string,
    opts: ChunkUploaderOptions,
  ) {
    this.#o = { parallel: 1, ...opts };
  }

  /** A NAR's way in; it counts as adding chunks until it waits in settled(). */
  stream(): UploadStream {
    this.#producing++;
    return new UploadStream(this);
  }

  /** @internal Compresses the chunks (all queued at once) and writes their records in order; returns their bytes. */
  async add(stream: UploadStream, chunks: UploadChunk[]): Promise<number> {
    const frames = chunks.map((c) =>
      this.#o.pool.compress(c.data, { hashStored: false }).then((f) => ({ hash: c.hash, size: f.size, frame: f.compressed })),
    );
    frames.forEach((f) => f.catch(() => {}));
    return this.#exclusive(async () => {
      let written = 0;
      for (const pending of frames) {
        const { hash, size, frame } = await pending;
        const recordBytes = 40 + frame.length;
        if (this.#filling && this.#filling.used + recordBytes > this.#filling.buffer.length) await this.#send();
        const batch = (this.#filling ??= this.#newBatch(recordBytes));
        batch.used += chunkRecordHeader(hash, size, frame.length).copy(batch.buffer, batch.used);
        batch.used += frame.copy(batch.buffer, batch.used);
        batch.count++;
        batch.streams.set(stream, (batch.streams.get(stream) ?? 0) + 1);
        stream.outstanding++;
        written += recordBytes;
      }
      return written;
    });
  }

  /** @internal The stream waits on its records: it no longer adds any, so the batch may go. */
  waiting(stream: UploadStream, producing: boolean): void {
    if (producing) this.#producing--;
    if (!this.#filling) return;
    if (this.#producing === 0) void this.#flush();
    else if (this.#filling.streams.has(stream)) this.#linger ??= setTimeout(() => void this.#flush(), LINGER_MS);
  }

  /** @internal */
  resumed(): void {
    this.#producing++;
  }

  /** Sends what is left and waits for every request (their failures reach the streams). */
  async close(): Promise<void> {
    await this.#flush();
    await Promise.all(this.#inFlight);
  }

  /** Sends what is filling, after the appends under way (a lingering NAR must not wait for a full batch). */
  #flush(): Promise<void> {
    return this.#exclusive(async () => {
      if (this.#filling) await this.#send();
    });
  }

  /** Runs `fn` after every append or flush started before it, and before any started after. */
  async #exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const previous = this.#appending;
    let release!: () => void;
    this.#appending = new Promise((resolve) => (release = resolve));
    await previous;
    try {
      return await fn();
    } finally {
      release();
    }
  }

  #newBatch(minBytes: number): Batch {
    const buffer = this.#free.pop() ?? Buffer.allocUnsafeSlow(Math.max(this.#o.requestBytes, minBytes));
    return { buffer: buffer.length >= minBytes ? buffer : Buffer.allocUnsafeSlow(minBytes), used: 0, count: 0, streams: new Map() };
  }

  /** Starts the filling batch's request once fewer than `parallel` are in flight. */
  async #send(): Promise<void> {
    const batch = this.#filling!;
    this.#filling = undefined;
    clearTimeout(this.#linger);
    this.#linger = undefined;
    while (this.#inFlight.size >= this.#o.parallel) await Promise.race(this.#inFlight).catch(() => {});
    const body = batch.buffer.subarray(0, batch.used) as Uint8Array<ArrayBuffer>;
    const p = this.client
      .uploadChunks(this.cache, body, this.#o.signal)
      .then(
        () => {
          this.#o.onSent?.(batch.count, batch.used);
          for (const [stream, n] of batch.streams) stream.stored(n);
        },
        (e: unknown) => {
          for (const stream of batch.streams.keys()) stream.fail(e);
        },
      )
      .finally(() => {
        this.#inFlight.delete(p);
        if (batch.buffer.length === this.#o.requestBytes && this.#free.length === 0) this.#free.push(batch.buffer);
      });
    this.#inFlight.add(p);
  }
}

interface Batch {
  buffer: Buffer;
  used: number;
  count: number;
  /** Records each stream has in this batch. */
  streams: Map<UploadStream, number>;
}

/** One NAR's chunks through the shared uploader. */
export class UploadStream {
  /** Records added and not yet acknowledged by the server. */
  outstanding = 0;
  #failure: unknown;
  #producing = true;
  #wake: (() => void) | undefined;

  constructor(private readonly uploader: ChunkUploader) {}

  /** Queues chunks for upload; resolves once they are written into a request (backpressure), with the bytes they take there. */
  async send(chunks: UploadChunk[]): Promise<number> {
    this.#throwIfFailed();
    if (!this.#producing) {
      this.#producing = true;
      this.uploader.resumed();
    }
    return chunks.length > 0 ? this.uploader.add(this, chunks) : 0;
  }

  /** Resolves when every chunk sent so far is stored by the server; throws the failure of a request that carried one. */
  async settled(): Promise<void> {
    const producing = this.#producing;
    this.#producing = false;
    this.uploader.waiting(this, producing);
    while (this.outstanding > 0 && this.#failure === undefined) await new Promise<void>((resolve) => (this.#wake = resolve));
    this.#throwIfFailed();
  }

  /** Ends the stream early (a failed NAR): it no longer holds back a batch. */
  abandon(): void {
    if (this.#producing) {
      this.#producing = false;
      this.uploader.waiting(this, true);
    }
  }

  /** @internal */
  stored(n: number): void {
    this.outstanding -= n;
    if (this.outstanding === 0) this.#wake?.();
  }

  /** @internal */
  fail(e: unknown): void {
    this.#failure ??= e;
    this.#wake?.();
  }

  #throwIfFailed(): void {
    if (this.#failure !== undefined) throw this.#failure;
  }
}
