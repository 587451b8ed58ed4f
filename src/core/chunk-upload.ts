import type { Kysely } from 'kysely';
import type { ChunkingParams } from '../chunking/fastcdc.ts';
import type { Principal } from '../token/index.ts';
import type { CacheRow, ChunkRow, Database } from '../db/schema.ts';
import { claimChunks, findVisibleChunks, stageChunks } from '../db/repos/chunks.ts';
import { findNarInCache } from '../db/repos/nars.ts';
import { WorkerInputError } from '../compression/pool.ts';
import type { ChunkStore, PackWriter } from './chunk-store.ts';
import { commitNar } from './nar-commit.ts';
import { recordPath, validatePathMetadata } from './paths.ts';
import { narSizeLimit, type PushDeps } from './push.ts';
import type { PathOutcome } from '../api/v1.ts';
import type { PathInfo } from '../nix/narinfo.ts';
import { badRequest, LoftError, tooLarge } from './errors.ts';

/**
 * The negotiated chunk upload (docs/api.md#chunk-negotiation): the client asks
 * which chunks are missing, uploads those as zstd frames, then commits the NAR
 * as a list of chunk hashes.
 *
 * Visibility rule: a chunk is "present" for a caller only if it belongs to a
 * NAR of a cache the caller may pull, or was staged for the target cache by an
 * earlier upload. Anything else is reported missing (a re-upload deduplicates
 * silently), so probing hashes reveals nothing about caches the caller cannot read.
 */

export interface ChunkUploadDeps extends Pick<PushDeps, 'maxNarSize' | 'maxNarSizePerCache'> {
  db: Kysely<Database>;
  store: ChunkStore;
  chunking: ChunkingParams;
}

/** A record is `[sha256: 32][size: u32 BE][frame length: u32 BE][frame]`. */
const RECORD_HEADER = 40;
const HEX_SHA256 = /^[0-9a-f]{64}$/;
/** Records verified and stored together (two batches in memory at most). */
const BATCH_RECORDS = 64;
const BATCH_BYTES = 4 * 1024 * 1024;

export class MissingChunksError extends LoftError {
  constructor(readonly missing: string[]) {
    super('bad_request', `${missing.length} chunks are missing or not uploaded for this cache`);
  }
}

/** Validates a list of chunk hashes (lowercase sha256 hex). */
export function parseChunkHashes(list: unknown, max: number): string[] {
  if (!Array.isArray(list)) throw badRequest("'chunks' must be an array of sha256 hex strings");
  if (list.length > max) throw badRequest(`at most ${max} chunk hashes per request, got ${list.length}`);
  const bad = list.find((h) => typeof h !== 'string' || !HEX_SHA256.test(h));
  if (bad !== undefined) throw badRequest(`invalid chunk hash '${String(bad)}': expected 64 lowercase hex digits`);
  return list as string[];
}

/** Ids of the caches whose content the caller may read: public ones and those the token grants pull on. */
export function pullableCacheIds(caches: CacheRow[], principal: Principal): number[] {
  return caches.filter((c) => c.is_public === 1 || principal.can(c.name, 'pull')).map((c) => c.id);
}

/**
 * The hashes the caller must upload. Chunks reported present are staged for
 * the cache so garbage collection keeps them until the NAR is committed.
 */
export async function findMissingChunks(
  db: Kysely<Database>,
  cache: CacheRow,
  pullable: number[],
  hashes: string[],
): Promise<string[]> {
  const unique = [...new Set(hashes)];
  const visible = await findVisibleChunks(db, unique, pullable, cache.id);
  await stageChunks(db, cache.id, [...visible.values()].map((c) => c.id), Date.now());
  return unique.filter((h) => !visible.has(h));
}

/**
 * Reads chunk records from an upload body in batches: each batch is verified
 * (sizes and hashes, off the event loop), its new chunks appended to the
 * request's pack, and the known ones staged for the cache; the pack is
 * recorded and its chunks staged at the end of the request.
 * A chunk the server already has is staged and not stored again. Records
 * completed before a failure (a dropped connection, a bad record later on)
 * stay stored and staged: a client that resumes does not upload them again.
 */
export async function receiveChunks(
  d: ChunkUploadDeps,
  cache: CacheRow,
  pullable: number[],
  body: AsyncIterable<Buffer>,
  maxBytes: number,
): Promise<{ stored: number; deduplicated: number }> {
  const upload: RequestPack = { pack: d.store.openPack(), appended: new Set(), counts: { stored: 0, deduplicated: 0 } };
  let batch: ChunkRecord[] = [];
  let batchBytes = 0;
  // One batch is verified and appended while the next one is read.
  let storing: Promise<void> = Promise.resolve();
  const flush = async () => {
    const b = batch;
    batch = [];
    batchBytes = 0;
    await storing;
    storing = storeBatch(d, cache, pullable, b, upload);
    storing.catch(() => {}); // awaited at the next flush or below
  };
  try {
    for await (const record of readChunkRecords(body, d.chunking.maxSize, maxBytes)) {
      batch.push(record);
      batchBytes += record.frame.length;
      if (batch.length >= BATCH_RECORDS || batchBytes >= BATCH_BYTES) await flush();
    }
  } finally {
    if (batch.length > 0) await flush().catch(() => {});
    // What was appended before a failure is recorded and staged all the same.
    await storing.finally(async () => {
      const stored = await d.store.record(upload.pack);
      await stageChunks(d.db, cache.id, stored.map((c) => c.id), Date.now());
    });
  }
  return upload.counts;
}

export interface ChunkRecord {
  hash: string;
  size: number;
  frame: Buffer;
}

/** The request's pack: every new chunk of one upload request goes into one storage object. */
interface RequestPack {
  pack: PackWriter;
  appended: Set<string>;
  counts: { stored: number; deduplicated: number };
}

async function storeBatch(
  d: ChunkUploadDeps,
  cache: CacheRow,
  pullable: number[],
  records: ChunkRecord[],
  upload: RequestPack,
): Promise<void> {
  if (records.length === 0) return;
  const unique = [...new Map(records.map((r) => [r.hash, r])).values()];
  let storedHashes: string[];
  try {
    storedHashes = await d.store.pool.verifyFrames(unique.map((r) => ({ frame: r.frame, hash: r.hash, size: r.size })));
  } catch (e) {
    // A frame the worker rejected is the client's fault; anything else (a closed pool, a crash) is not.
    if (e instanceof WorkerInputError) throw badRequest(e.message);
    throw e;
  }
  const storedHash = new Map(unique.map((r, i) => [r.hash, storedHashes[i]]));
  const existing = await claimChunks(d.db, unique.map((r) => r.hash), Date.now());
  // Only a chunk the caller could already see counts as deduplicated: the answer must not reveal
  // that a chunk existed in a cache the caller cannot read.
  const seen = existing.size > 0 ? await findVisibleChunks(d.db, [...existing.keys()], pullable, cache.id) : new Map();
  const fresh = unique.filter((r) => !existing.has(r.hash) && !upload.appended.has(r.hash));
  await upload.pack.append(fresh.map((r) => ({ ...r, storedHash: storedHash.get(r.hash) })));
  for (const r of fresh) upload.appended.add(r.hash);
  await stageChunks(d.db, cache.id, [...existing.values()].map((c) => c.id), Date.now());
  upload.counts.deduplicated += unique.filter((r) => seen.has(r.hash)).length;
  upload.counts.stored += unique.length - unique.filter((r) => seen.has(r.hash)).length;
}

/** zstd's worst-case expansion (ZSTD_compressBound) plus room for frame headers and checksums. */
function maxFrameLength(size: number): number {
  return size + (size >> 8) + 1024;
}

/** Splits the body into records; fails on a malformed header, oversized data or a trailing partial record. */
export async function* readChunkRecords(body: AsyncIterable<Buffer>, maxChunkSize: number, maxBytes: number): AsyncGenerator<ChunkRecord> {
  const reader = new ExactReader(body, maxBytes);
  for (;;) {
    const header = await reader.read(RECORD_HEADER);
    if (header === null) return;
    const hash = header.subarray(0, 32).toString('hex');
    const size = header.readUInt32BE(32);
    const length = header.readUInt32BE(36);
    if (size > maxChunkSize) throw badRequest(`chunk ${hash}: ${size} bytes exceeds the chunk size limit of ${maxChunkSize}`);
    if (length === 0 || length > maxFrameLength(size)) {
      throw badRequest(`chunk ${hash}: a frame of ${length} bytes is impossible for ${size} bytes of data`);
    }
    const frame = await reader.read(length);
    if (frame === null) throw badRequest(`chunk ${hash}: the body ends inside its record`);
    yield { hash, size, frame };
  }
}

/** Reads exact byte counts off a stream of pieces. */
class ExactReader {
  readonly #it: AsyncIterator<Buffer>;
  #pieces: Buffer[] = [];
  #buffered = 0;
  #total = 0;

  constructor(
    body: AsyncIterable<Buffer>,
    private readonly maxBytes: number,
  ) {
    this.#it = body[Symbol.asyncIterator]();
  }

  /** `n` bytes, or null at a clean end of stream; a stream ending part-way through is a 400. */
  async read(n: number): Promise<Buffer | null> {
    while (this.#buffered < n) {
      const { value, done } = await this.#it.next();
      if (done) {
        if (this.#buffered === 0) return null;
        throw badRequest(`the chunk upload body ends inside a record`);
      }
      this.#total += value.length;
      if (this.#total > this.maxBytes) throw tooLarge(`chunk upload body exceeds the ${this.maxBytes}-byte limit`);
      this.#pieces.push(value);
      this.#buffered += value.length;
    }
    const all = this.#pieces.length === 1 ? this.#pieces[0] : Buffer.concat(this.#pieces);
    const out = Buffer.from(all.subarray(0, n)); // a copy: the frame outlives the network buffer
    const rest = all.subarray(n);
    this.#pieces = rest.length > 0 ? [rest] : [];
    this.#buffered = rest.length;
    return out;
  }
}

export interface ChunkedNarCommit {
  meta: PathInfo;
  chunks: string[];
  pullable: number[];
  sub: string | null;
  /** `?replace=true` from a caller with `delete`. */
  replace?: boolean;
}

/**
 * Makes a path visible from a NAR the client uploaded as chunks. A NAR the
 * caller can already read is reused as is; otherwise every chunk must be
 * visible to the caller, and the chunks are read back and checked against the
 * claimed NarHash, NarSize and NAR structure before anything is recorded.
 */
export async function commitChunkedNar(
  d: ChunkUploadDeps,
  cache: CacheRow,
  c: ChunkedNarCommit,
): Promise<{ kind: 'uploaded' | 'deduplicated'; outcome: PathOutcome; nar_size: number }> {
  const p = validatePathMetadata(cache, c.meta);
  // Refused before any lookup or verification: the work a commit causes is bounded by the limit.
  const limit = narSizeLimit(d, cache);
  if (p.narSize > limit) throw tooLarge(`NarSize ${p.narSize} exceeds the limit of ${limit} bytes for cache '${cache.name}'`);
  const readable = await findNarInCache(d.db, c.pullable, { narHash: p.narHash });
  if (readable) {
    const outcome = await recordPath(d.db, cache, p, readable, c.sub, { replace: c.replace });
    return { kind: 'deduplicated', outcome, nar_size: p.narSize };
  }
  const visible = await findVisibleChunks(d.db, [...new Set(c.chunks)], c.pullable, cache.id);
  const missing = [...new Set(c.chunks.filter((h) => !visible.has(h)))];
  if (missing.length > 0) throw new MissingChunksError(missing);
  const rows: ChunkRow[] = c.chunks.map((h) => visible.get(h)!);
  const total = rows.reduce((sum, r) => sum + r.size, 0);
  if (total !== p.narSize) throw badRequest(`NarSize mismatch: claimed ${p.narSize}, the chunks hold ${total} bytes`);
  const nar = await commitNar(d.db, d.store, rows, p, { verifyContent: true });
  const outcome = await recordPath(d.db, cache, p, nar, c.sub, { replace: c.replace });
  return { kind: 'uploaded', outcome, nar_size: p.narSize };
}
