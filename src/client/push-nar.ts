import { createHash } from 'node:crypto';
import { FastCdcChunker } from '../chunking/fastcdc.ts';
import { ChunkWorkerPool } from '../compression/pool.ts';
import { formatSha256Nix32, parseSha256 } from '../nix/hash.ts';
import type { PathInfo } from '../nix/narinfo.ts';
import { chunkRecordHeader, LoftApiError, type LoftClient, type NarCommitResult } from './http.ts';

/** The path's metadata; `narHash` in any form Nix prints (`sha256:<nix32>`, hex, SRI). */
export type NarMeta = PathInfo;

/** Increments, for progress bars: NAR bytes read, chunk bytes sent, chunks the server already had. */
export type PushProgress =
  | { type: 'read'; bytes: number }
  | { type: 'uploaded'; bytes: number; chunks: number }
  | { type: 'deduplicated'; bytes: number; chunks: number };

export interface PushNarOptions {
  /** Chunk-upload requests in flight at once (default 4). */
  parallelUploads?: number;
  /** Chunks asked about per /chunks/missing call (default 256; a window also ends at 8 MiB). */
  windowChunks?: number;
  onProgress?: (ev: PushProgress) => void;
  /** zstd level of uploaded chunks (default 3); ignored when `pool` is given. */
  compressionLevel?: number;
  /** A pool shared across pushes; by default one is started and closed per call. */
  pool?: ChunkWorkerPool;
  signal?: AbortSignal;
  /**
   * Reads the NAR again from the start. Only used when the commit finds chunks
   * missing (collected since they were reported present): they are re-read and
   * uploaded, and the commit retried once. Without it that case is an error.
   */
  reopen?: () => AsyncIterable<Uint8Array>;
}

export interface PushNarResult {
  kind: NarCommitResult['kind'];
  narSize: number;
  /** Chunks in the NAR (repeats included). */
  chunks: number;
  uploadedChunks: number;
  /** Bytes of chunk-upload bodies sent (compressed frames plus record headers). */
  uploadedBytes: number;
  /** Uncompressed bytes not sent because the server (or an earlier chunk of this NAR) had them. */
  dedupedBytes: number;
}

/**
 * Memory per push is about two windows of raw chunks plus `parallelUploads`
 * request bodies, so both are kept small (the server accepts bodies up to its
 * max_chunk_request_bytes; smaller ones cost only a few more requests).
 */
const WINDOW_BYTES = 8 * 1024 * 1024;
const REQUEST_BYTES = 8 * 1024 * 1024;

interface Chunk {
  hash: string;
  data: Buffer;
}

/**
 * Pushes one NAR with the chunk protocol in a single streaming pass: cut it
 * with the server's FastCDC parameters, ask which chunks of each window the
 * server lacks, compress and upload only those, then commit the NAR as its
 * list of chunk hashes. Memory stays bounded by two windows whatever the NAR
 * size. An interrupted push resumes cheaply: uploaded chunks stay staged for
 * the cache and are not reported missing again.
 */
export async function pushNar(
  client: LoftClient,
  cache: string,
  meta: NarMeta,
  nar: AsyncIterable<Uint8Array>,
  opts: PushNarOptions = {},
): Promise<PushNarResult> {
  const signal = opts.signal;
  const info = await client.serverInfo(signal);
  const params = { minSize: info.chunking.min_size, avgSize: info.chunking.avg_size, maxSize: info.chunking.max_size };
  const pool = opts.pool ?? new ChunkWorkerPool({ level: opts.compressionLevel ?? 3 });
  const result = { narSize: 0, uploadedChunks: 0, uploadedBytes: 0, dedupedBytes: 0 };
  const emit = opts.onProgress ?? (() => {});
  const requestBytes = Math.min(info.max_chunk_request_bytes, REQUEST_BYTES);
  const sender = new ChunkSender(client, cache, requestBytes, opts.parallelUploads ?? 4, pool, signal, (n, bytes) => {
    result.uploadedChunks += n;
    result.uploadedBytes += bytes;
    emit({ type: 'uploaded', bytes, chunks: n });
  });
  const windowChunks = opts.windowChunks ?? 256;
  const hashes: string[] = [];
  /** Chunks already uploaded or reported present during this push. */
  const handled = new Set<string>();
  const narHasher = createHash('sha256');

  const sendWindow = async (window: Chunk[]) => {
    const ask = [...new Set(window.map((c) => c.hash).filter((h) => !handled.has(h)))];
    const missing = new Set(ask.length > 0 ? await client.missingChunks(cache, ask, signal) : []);
    let dedupBytes = 0;
    let dedupChunks = 0;
    const upload: Chunk[] = [];
    for (const c of window) {
      if (!handled.has(c.hash) && missing.has(c.hash)) upload.push(c);
      else {
        dedupBytes += c.data.length;
        dedupChunks++;
      }
      handled.add(c.hash);
    }
    result.dedupedBytes += dedupBytes;
    if (dedupChunks > 0) emit({ type: 'deduplicated', bytes: dedupBytes, chunks: dedupChunks });
    await sender.send(upload);
  };

  try {
    let window: Chunk[] = [];
    let windowBytes = 0;
    let previous: Promise<void> = Promise.resolve();
    // The previous window uploads while the next one is read: at most two windows in memory.
    const flush = async () => {
      const w = window;
      window = [];
      windowBytes = 0;
      await previous;
      previous = sendWindow(w);
      previous.catch(() => {}); // awaited at the next flush or at the end
    };
    const take = async (chunks: Buffer[]) => {
      for (const data of chunks) {
        const hash = createHash('sha256').update(data).digest('hex');
        hashes.push(hash);
        window.push({ hash, data });
        windowBytes += data.length;
        if (window.length >= windowChunks || windowBytes >= WINDOW_BYTES) await flush();
      }
    };
    const chunker = new FastCdcChunker(params);
    for await (const piece of nar) {
      signal?.throwIfAborted();
      result.narSize += piece.length;
      narHasher.update(piece);
      emit({ type: 'read', bytes: piece.length });
      await take(chunker.push(piece));
    }
    await take(chunker.finish());
    await flush();
    await previous;
    await sender.drain();

    const narHash = formatSha256Nix32(narHasher.digest());
    if (result.narSize !== meta.narSize) {
      throw new Error(`${meta.storePath}: NarSize mismatch: the metadata says ${meta.narSize}, the NAR has ${result.narSize} bytes`);
    }
    if (narHash !== formatSha256Nix32(parseSha256(meta.narHash))) {
      throw new Error(`${meta.storePath}: NarHash mismatch: the metadata says ${meta.narHash}, the NAR hashes to ${narHash}`);
    }
    const body = {
      cache,
      store_path: meta.storePath,
      nar_hash: narHash,
      nar_size: meta.narSize,
      references: meta.references,
      deriver: meta.deriver ?? null,
      sigs: meta.sigs,
      ca: meta.ca ?? null,
    };
    let committed: NarCommitResult;
    try {
      committed = await client.commitNar(body, hashes, signal);
    } catch (e) {
      const missing = missingListOf(e);
      if (!missing || !opts.reopen) throw e;
      await reuploadChunks(opts.reopen(), params, new Set(missing), sender);
      committed = await client.commitNar(body, hashes, signal);
    }
    return { kind: committed.kind, ...result, chunks: hashes.length };
  } finally {
    await sender.drain().catch(() => {});
    if (!opts.pool) await pool.close();
  }
}

function missingListOf(e: unknown): string[] | undefined {
  if (!(e instanceof LoftApiError) || e.status !== 400) return undefined;
  const missing = e.body?.missing;
  return Array.isArray(missing) ? (missing as string[]) : undefined;
}

/** Reads the NAR again and uploads just the chunks in `wanted`. */
async function reuploadChunks(
  nar: AsyncIterable<Uint8Array>,
  params: { minSize: number; avgSize: number; maxSize: number },
  wanted: Set<string>,
  sender: ChunkSender,
): Promise<void> {
  const chunker = new FastCdcChunker(params);
  const pick = async (chunks: Buffer[]) => {
    const upload: Chunk[] = [];
    for (const data of chunks) {
      const hash = createHash('sha256').update(data).digest('hex');
      if (wanted.delete(hash)) upload.push({ hash, data });
    }
    if (upload.length > 0) await sender.send(upload);
  };
  for await (const piece of nar) await pick(chunker.push(piece));
  await pick(chunker.finish());
  await sender.drain();
}

/**
 * Compresses chunks on the worker pool and packs them into upload requests of
 * at most `maxRequestBytes`, with up to `parallel` requests in flight.
 */
class ChunkSender {
  readonly #inFlight = new Set<Promise<void>>();
  #failure: unknown;

  constructor(
    private readonly client: LoftClient,
    private readonly cache: string,
    private readonly maxRequestBytes: number,
    private readonly parallel: number,
    private readonly pool: ChunkWorkerPool,
    private readonly signal: AbortSignal | undefined,
    private readonly onSent: (chunks: number, bytes: number) => void,
  ) {}

  async send(chunks: Chunk[]): Promise<void> {
    // All compressions are queued at once (the pool runs them on its threads); frames are packed in order.
    const frames = chunks.map((c) => {
      const size = c.data.length;
      return this.pool.compress(c.data, { hashStored: false }).then((f) => ({ hash: c.hash, size, frame: f.compressed }));
    });
    frames.forEach((f) => f.catch(() => {}));
    let parts: Buffer[] = [];
    let bytes = 0;
    let count = 0;
    for (const pending of frames) {
      const { hash, size, frame } = await pending;
      const recordBytes = 40 + frame.length;
      if (count > 0 && bytes + recordBytes > this.maxRequestBytes) {
        await this.#request(parts, count);
        parts = [];
        bytes = 0;
        count = 0;
      }
      parts.push(chunkRecordHeader(hash, size, frame.length), frame);
      bytes += recordBytes;
      count++;
    }
    if (count > 0) await this.#request(parts, count);
  }

  /** Waits for every request; throws the first failure. */
  async drain(): Promise<void> {
    await Promise.all(this.#inFlight);
    this.#throwIfFailed();
  }

  /** Starts a request once fewer than `parallel` are in flight. */
  async #request(parts: Buffer[], count: number): Promise<void> {
    while (this.#inFlight.size >= this.parallel) await Promise.race(this.#inFlight);
    this.#throwIfFailed();
    const body = Buffer.concat(parts);
    const p = this.client
      .uploadChunks(this.cache, body, this.signal)
      .then(
        () => this.onSent(count, body.length),
        (e) => void (this.#failure ??= e),
      )
      .finally(() => this.#inFlight.delete(p));
    this.#inFlight.add(p);
  }

  #throwIfFailed(): void {
    if (this.#failure !== undefined) throw this.#failure;
  }
}
