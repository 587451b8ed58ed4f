import { createHash } from 'node:crypto';
import { FastCdcChunker } from '../chunking/fastcdc.ts';
import { ChunkWorkerPool } from '../compression/pool.ts';
import { formatSha256Nix32, parseSha256 } from '../nix/hash.ts';
import type { PathInfo } from '../nix/narinfo.ts';
import { ChunkUploader, type UploadChunk } from './chunk-uploader.ts';
import { LoftApiError, type LoftClient, type NarCommitResult, type ServerInfo } from './http.ts';

/** The path's metadata; `narHash` in any form Nix prints (`sha256:<nix32>`, hex, SRI). */
export type NarMeta = PathInfo;

/** Increments, for progress bars: NAR bytes read, chunk bytes sent, chunks the server already had. */
export type PushProgress =
  | { type: 'read'; bytes: number }
  | { type: 'uploaded'; bytes: number; chunks: number }
  | { type: 'deduplicated'; bytes: number; chunks: number };

export interface PushNarOptions {
  /** Chunks asked about per /chunks/missing call (default 64; a window also ends at 4 MiB). */
  windowChunks?: number;
  onProgress?: (ev: PushProgress) => void;
  /** zstd level of uploaded chunks (default 3); ignored when `pool` is given. */
  compressionLevel?: number;
  /** A pool shared across pushes; by default one is started and closed per call. */
  pool?: ChunkWorkerPool;
  /**
   * The uploader shared by the NARs of one push (see ChunkUploader), so their
   * chunks travel in full requests; by default one is made for this NAR alone.
   */
  uploader?: ChunkUploader;
  /** The server's parameters, when the caller has them already (one call per push, not per NAR). */
  serverInfo?: ServerInfo;
  /** Called once the NAR has been read to its end: only the upload and the commit remain. */
  onRead?: () => void;
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
  /** Bytes of the chunk records sent (compressed frames plus record headers). */
  uploadedBytes: number;
  /** Uncompressed bytes not sent because the server (or an earlier chunk of this NAR) had them. */
  dedupedBytes: number;
}

/**
 * Memory per NAR is about two windows of raw chunks (one looked up and
 * compressed while the next is read); the uploader's request buffers are
 * shared by every NAR of a push.
 */
const WINDOW_BYTES = 4 * 1024 * 1024;
/** Upload request size: the server stores each request's new chunks as one pack. */
export const REQUEST_BYTES = 32 * 1024 * 1024;

/** An uploader for one push (see ChunkUploader), with requests as large as the server accepts up to REQUEST_BYTES. */
export function pushUploader(
  client: LoftClient,
  cache: string,
  info: ServerInfo,
  pool: ChunkWorkerPool,
  opts: { signal?: AbortSignal; onSent?: (chunks: number, bytes: number) => void } = {},
): ChunkUploader {
  return new ChunkUploader(client, cache, { requestBytes: Math.min(info.max_chunk_request_bytes, REQUEST_BYTES), pool, ...opts });
}

/**
 * Pushes one NAR with the chunk protocol in a single streaming pass: cut it
 * with the server's FastCDC parameters, ask which chunks of each window the
 * server lacks, compress and upload only those, then commit the NAR as its
 * list of chunk hashes once they are stored. Memory stays bounded by two
 * windows whatever the NAR size. An interrupted push resumes cheaply:
 * uploaded chunks stay staged for the cache and are not reported missing again.
 */
export async function pushNar(
  client: LoftClient,
  cache: string,
  meta: NarMeta,
  nar: AsyncIterable<Uint8Array>,
  opts: PushNarOptions = {},
): Promise<PushNarResult> {
  const signal = opts.signal;
  const info = opts.serverInfo ?? (await client.serverInfo(signal));
  const params = { minSize: info.chunking.min_size, avgSize: info.chunking.avg_size, maxSize: info.chunking.max_size };
  const pool = opts.pool ?? new ChunkWorkerPool({ level: opts.compressionLevel ?? 3 });
  const uploader = opts.uploader ?? pushUploader(client, cache, info, pool, { signal });
  const upload = uploader.stream();
  const result = { narSize: 0, uploadedChunks: 0, uploadedBytes: 0, dedupedBytes: 0 };
  const emit = opts.onProgress ?? (() => {});
  const windowChunks = opts.windowChunks ?? 64;
  const hashes: string[] = [];
  /** Chunks already uploaded or reported present during this push. */
  const handled = new Set<string>();
  const narHasher = createHash('sha256');

  const sendWindow = async (window: UploadChunk[]) => {
    const ask = [...new Set(window.map((c) => c.hash).filter((h) => !handled.has(h)))];
    const missing = new Set(ask.length > 0 ? await client.missingChunks(cache, ask, signal) : []);
    let dedupBytes = 0;
    let dedupChunks = 0;
    const chunks: UploadChunk[] = [];
    for (const c of window) {
      if (!handled.has(c.hash) && missing.has(c.hash)) chunks.push(c);
      else {
        dedupBytes += c.data.length;
        dedupChunks++;
      }
      handled.add(c.hash);
    }
    result.dedupedBytes += dedupBytes;
    if (dedupChunks > 0) emit({ type: 'deduplicated', bytes: dedupBytes, chunks: dedupChunks });
    await sendChunks(chunks);
  };
  // Progress counts a chunk when it is written into a request (what the bars can follow).
  const sendChunks = async (chunks: UploadChunk[]) => {
    const bytes = await upload.send(chunks);
    result.uploadedChunks += chunks.length;
    result.uploadedBytes += bytes;
    if (chunks.length > 0) emit({ type: 'uploaded', bytes, chunks: chunks.length });
  };

  try {
    let window: UploadChunk[] = [];
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
    opts.onRead?.();
    await upload.settled();

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
      await reuploadChunks(opts.reopen(), params, new Set(missing), sendChunks);
      await upload.settled();
      committed = await client.commitNar(body, hashes, signal);
    }
    return { kind: committed.kind, ...result, chunks: hashes.length };
  } finally {
    upload.abandon();
    if (!opts.uploader) await uploader.close();
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
  send: (chunks: UploadChunk[]) => Promise<void>,
): Promise<void> {
  const chunker = new FastCdcChunker(params);
  const pick = async (chunks: Buffer[]) => {
    const upload: UploadChunk[] = [];
    for (const data of chunks) {
      const hash = createHash('sha256').update(data).digest('hex');
      if (wanted.delete(hash)) upload.push({ hash, data });
    }
    if (upload.length > 0) await send(upload);
  };
  for await (const piece of nar) await pick(chunker.push(piece));
  await pick(chunker.finish());
}
