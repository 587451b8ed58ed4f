import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { PassThrough, type Readable } from 'node:stream';
import type { Kysely } from 'kysely';
import type { ChunkWorkerPool, StoredFrame } from '../compression/pool.ts';
import type { BlobStore } from '../storage/types.ts';
import type { ChunkRow, Database } from '../db/schema.ts';
import { insertChunks } from '../db/repos/chunks.ts';
import {
  deleteRetiredPacks,
  findPacks,
  knownPackKeys,
  liveChunksOf,
  packUsage,
  retireEmptyPacks,
  type PackUsage,
} from '../db/repos/packs.ts';

const MiB = 1024 * 1024;

export interface ChunkStoreOptions {
  /** A pack is closed once it holds this many bytes (default 32 MiB). */
  packTargetSize?: number;
  /** Largest single ranged read when serving consecutive chunks (default 4 MiB). */
  maxReadSize?: number;
}

/** A verified zstd frame to store; `storedHash` is the sha256 hex of `frame` when already known. */
export interface NewFrame {
  hash: string;
  size: number;
  frame: Buffer;
  storedHash?: string;
}

/** Served bytes of consecutive chunks (frames as stored, or decompressed) and the chunks they hold. */
export interface ReadPiece {
  data: Buffer;
  chunks: ChunkRow[];
}

export interface CompactionResult {
  /** Packs whose live chunks were copied into new packs (mostly dead ones, and small ones merged). */
  packsRewritten: number;
  /** Packs marked for deletion (rewritten, or holding no live chunk). */
  packsRetired: number;
  /** Retired packs whose objects were deleted, and their bytes. */
  packsDeleted: number;
  bytesFreed: number;
}

/** Object key prefixes chunk bytes live under: packs, and one-frame blobs written before packs existed. */
const KEY_PREFIXES = ['packs/', 'chunks/'];
const LIST_BATCH = 1000;
/** Pack keys remembered by ChunkStore.read (oldest forgotten first). */
const KEY_CACHE = 10_000;
/** Packs examined per compaction pass, so one pass stays bounded. */
const COMPACT_LIMIT = 256;

/**
 * The global chunk space, and the only code that knows how chunks map to
 * storage objects (docs/storage.md): frames are appended to pack objects,
 * written once under a random key and never modified; a chunk row names its
 * pack, offset and length. A pack's rows are written only after the object is
 * durable, so no row ever names missing bytes; a crash leaves an unnamed pack,
 * which sweepOrphans() deletes. Two uploads racing on one chunk both write it:
 * the first row wins, the loser's copy is dead bytes that compact() reclaims.
 */
export class ChunkStore {
  readonly packTargetSize: number;
  readonly #maxReadSize: number;
  /** Pack id → storage key: a pack's key never changes, so reads skip the lookup for recently read packs. */
  readonly #keys = new Map<number, string>();

  constructor(
    private readonly db: Kysely<Database>,
    readonly blobs: BlobStore,
    readonly pool: ChunkWorkerPool,
    opts: ChunkStoreOptions = {},
  ) {
    this.packTargetSize = opts.packTargetSize ?? 32 * MiB;
    this.#maxReadSize = opts.maxReadSize ?? 4 * MiB;
  }

  /** A new pack being written; frames are streamed to storage as they are appended. */
  openPack(): PackWriter {
    return new PackWriter(this.blobs, `packs/${randomBytes(1).toString('hex')}/${randomBytes(12).toString('hex')}.pack`);
  }

  /**
   * Makes a finished pack's chunks visible: the pack row and the chunk rows in
   * one transaction, after the object is durable. Returns the row of every
   * frame's chunk (another upload's row where that one recorded it first).
   */
  async record(pack: PackWriter): Promise<ChunkRow[]> {
    const written = await pack.finish();
    if (!written) return [];
    const now = Date.now();
    const chunks = await this.db.transaction().execute(async (tx) => {
      const row = await tx
        .insertInto('packs')
        .values({ storage_key: written.key, size: written.size, created_at: now, retired_at: null })
        .returning('id')
        .executeTakeFirstOrThrow();
      const { chunks } = await insertChunks(
        tx,
        written.frames.map((f) => ({
          hash: f.hash,
          size: f.size,
          stored_size: f.length,
          stored_hash: f.storedHash,
          pack_id: Number(row.id),
          pack_offset: f.offset,
          created_at: now,
        })),
      );
      return chunks;
    });
    const byHash = new Map(chunks.map((c) => [c.hash, c]));
    return written.frames.map((f) => byHash.get(f.hash)!);
  }

  /** Stores verified frames as one pack and returns their rows. */
  async storeFrames(frames: NewFrame[]): Promise<ChunkRow[]> {
    if (frames.length === 0) return [];
    const pack = this.openPack();
    try {
      await pack.append(frames);
    } catch (e) {
      pack.abort(e as Error);
      throw e;
    }
    return this.record(pack);
  }

  /**
   * Yields the served bytes of `chunks` in order: runs of chunks that sit
   * back to back in one pack are fetched with one ranged read (up to
   * maxReadSize), `readAhead` reads ahead. Every frame is checked against its
   * stored hash in the worker pool (and decompressed there, checked against its
   * content hash, with `decompress`); a missing, short or corrupt range fails
   * the generator instead of yielding it. `unchecked` skips the frame checks
   * for a caller that verifies the content itself (a commit, against the NAR hash).
   */
  async *read(chunks: ChunkRow[], opts: { decompress: boolean; readAhead?: number; unchecked?: boolean }): AsyncGenerator<ReadPiece> {
    const keys = await this.#keysOf(chunks);
    const runs = this.#runs(chunks);
    const fetch = (run: ChunkRow[]): Promise<ReadPiece> => {
      const p = (async () => {
        const first = run[0];
        const key = keys.get(first.pack_id);
        if (!key) throw new Error(`chunk ${first.hash} names pack ${first.pack_id}, which has no row`);
        const length = run.reduce((n, c) => n + c.stored_size, 0);
        const bytes = await readRange(this.blobs, key, first.pack_offset, length);
        if (bytes.length !== length) {
          throw new Error(`pack ${key} is truncated: ${bytes.length} of ${length} bytes at offset ${first.pack_offset}`);
        }
        if (opts.unchecked && !opts.decompress) return { data: bytes, chunks: run };
        let offset = 0;
        const frames: StoredFrame[] = run.map((c) => {
          offset += c.stored_size;
          return { offset: offset - c.stored_size, length: c.stored_size, hash: c.hash, size: c.size, storedHash: c.stored_hash };
        });
        return { data: await this.pool.decodeFrames(bytes, frames, opts.decompress), chunks: run };
      })();
      // A read-ahead may fail before it is awaited; that must not be an unhandled rejection.
      p.catch(() => {});
      return p;
    };
    const readAhead = opts.readAhead ?? 2;
    const pending: Promise<ReadPiece>[] = [];
    let next = 0;
    while (next < runs.length && pending.length < readAhead) pending.push(fetch(runs[next++]));
    while (pending.length > 0) {
      const piece = await pending.shift()!;
      if (next < runs.length) pending.push(fetch(runs[next++]));
      yield piece;
    }
  }

  /**
   * A presigned URL for the whole served file, when the backend offers them
   * and the NAR's frames are exactly one whole pack (a NAR ingested into
   * packs of its own: one that was new and below the pack target size).
   */
  async redirectUrl(chunks: ChunkRow[], fileSize: number, expiresInSeconds: number): Promise<string | undefined> {
    if (!this.blobs.presignGet || chunks.length === 0) return undefined;
    const runs = this.#runs(chunks, Infinity);
    if (runs.length !== 1 || chunks[0].pack_offset !== 0) return undefined;
    const pack = (await findPacks(this.db, [chunks[0].pack_id])).get(chunks[0].pack_id);
    if (!pack || Number(pack.size) !== fileSize) return undefined;
    return this.blobs.presignGet(pack.storage_key, expiresInSeconds);
  }

  /**
   * Deletes pack objects no pack row names, older than `cutoff`: what a
   * process killed between writing a pack and recording it leaves behind
   * (and one-frame blobs of the old layout whose rows are gone), and the
   * temporary files of a pack write killed before its rename.
   */
  async sweepOrphans(cutoff: number): Promise<number> {
    let deleted = 0;
    let batch: string[] = [];
    const flush = async () => {
      const known = await knownPackKeys(this.db, batch);
      const orphans = batch.filter((k) => !known.has(k));
      await this.blobs.delete(orphans);
      deleted += orphans.length;
      batch = [];
    };
    for (const prefix of KEY_PREFIXES) {
      for await (const blob of this.blobs.list(prefix)) {
        if (blob.modifiedAt >= cutoff) continue;
        batch.push(blob.key);
        if (batch.length >= LIST_BATCH) await flush();
      }
    }
    if (batch.length > 0) await flush();
    return deleted + ((await this.blobs.sweepTemporaryFiles?.(Date.now() - cutoff)) ?? 0);
  }

  /**
   * Returns the space of dead chunk bytes and merges small packs: packs older
   * than `cutoff` whose live bytes are below `maxLiveRatio` of their size, and
   * small packs (see #compactionCandidates), have their live frames
   * copied (verified) into new packs, and the chunk rows moved, in one
   * transaction per new pack. The old pack is retired, not deleted: a read
   * that looked its chunks up before the move still finds the bytes. Retired
   * packs are deleted by a later pass, once retired before `cutoff`. A crash
   * at any point leaves either the old rows (and an orphan new pack) or the new
   * ones: nothing is lost.
   */
  async compact(o: { cutoff: number; maxLiveRatio: number; now?: number }): Promise<CompactionResult> {
    const now = o.now ?? Date.now();
    const result: CompactionResult = { packsRewritten: 0, packsRetired: 0, packsDeleted: 0, bytesFreed: 0 };
    const retired = await deleteRetiredPacks(this.db, o.cutoff);
    await this.blobs.delete(retired.map((p) => p.storage_key));
    result.packsDeleted = retired.length;
    result.bytesFreed = retired.reduce((n, p) => n + Number(p.size), 0);

    const sparse = this.#compactionCandidates(await packUsage(this.db, o.cutoff), o.maxLiveRatio);
    const emptied = sparse.filter((u) => u.liveBytes === 0).map((u) => Number(u.pack.id));
    let writer: PackWriter | undefined;
    let moving: { from: number; chunk: ChunkRow }[] = [];
    const close = async () => {
      if (!writer) return;
      await this.#relocate(writer, moving);
      writer = undefined;
      moving = [];
    };
    for (const { pack, liveBytes } of sparse) {
      if (liveBytes === 0) continue;
      const live = await liveChunksOf(this.db, Number(pack.id));
      try {
        for await (const piece of this.read(live, { decompress: false })) {
          writer ??= this.openPack();
          let offset = 0;
          await writer.append(
            piece.chunks.map((c) => {
              const frame = piece.data.subarray(offset, offset + c.stored_size);
              offset += c.stored_size;
              return { hash: c.hash, size: c.size, frame, storedHash: c.stored_hash };
            }),
          );
          for (const chunk of piece.chunks) moving.push({ from: Number(pack.id), chunk });
          if (writer.size >= this.packTargetSize) await close();
        }
      } catch (e) {
        writer?.abort(e as Error);
        throw e;
      }
      emptied.push(Number(pack.id));
      result.packsRewritten++;
    }
    await close();
    result.packsRetired = await retireEmptyPacks(this.db, emptied, now);
    return result;
  }

  /**
   * Packs worth rewriting: those mostly dead, and small ones (below a quarter of the pack target: small
   * pushes, chunk-upload requests, the old one-frame blobs) merged into full-size packs once there is
   * at least a quarter pack of them. In pack order, so a push's packs stay in order in the merged one.
   */
  #compactionCandidates(usage: PackUsage[], maxLiveRatio: number): PackUsage[] {
    const small = this.packTargetSize / 4;
    const sparse = (u: PackUsage) => u.liveBytes < Number(u.pack.size) * maxLiveRatio;
    const smallOnes = usage.filter((u) => !sparse(u) && Number(u.pack.size) < small);
    const merge = smallOnes.length >= 2 && smallOnes.reduce((n, u) => n + u.liveBytes, 0) >= small;
    return usage.filter((u) => sparse(u) || (merge && smallOnes.includes(u))).slice(0, COMPACT_LIMIT);
  }

  /** Records a pack written by compaction and points the moved chunks at it. */
  async #relocate(writer: PackWriter, moving: { from: number; chunk: ChunkRow }[]): Promise<void> {
    const written = await writer.finish();
    if (!written) return;
    await this.db.transaction().execute(async (tx) => {
      const row = await tx
        .insertInto('packs')
        .values({ storage_key: written.key, size: written.size, created_at: Date.now(), retired_at: null })
        .returning('id')
        .executeTakeFirstOrThrow();
      for (let i = 0; i < moving.length; i++) {
        // Only if the chunk is still where it was read (a sweep may have deleted it meanwhile).
        await tx
          .updateTable('chunks')
          .set({ pack_id: Number(row.id), pack_offset: written.frames[i].offset })
          .where('id', '=', moving[i].chunk.id)
          .where('pack_id', '=', moving[i].from)
          .execute();
      }
    });
  }

  async #keysOf(chunks: ChunkRow[]): Promise<Map<number, string>> {
    const ids = [...new Set(chunks.map((c) => c.pack_id))];
    const keys = new Map<number, string>();
    for (const id of ids) {
      const key = this.#keys.get(id);
      if (key) keys.set(id, key);
    }
    const missing = ids.filter((id) => !keys.has(id));
    if (missing.length === 0) return keys;
    for (const [id, pack] of await findPacks(this.db, missing)) {
      keys.set(id, pack.storage_key);
      if (this.#keys.size >= KEY_CACHE) this.#keys.delete(this.#keys.keys().next().value!);
      this.#keys.set(id, pack.storage_key);
    }
    return keys;
  }

  /** Splits `chunks` into runs stored back to back in one pack, each at most `maxBytes`. */
  #runs(chunks: ChunkRow[], maxBytes = this.#maxReadSize): ChunkRow[][] {
    const runs: ChunkRow[][] = [];
    let run: ChunkRow[] = [];
    let bytes = 0;
    for (const c of chunks) {
      const last = run[run.length - 1];
      const adjacent = last && last.pack_id === c.pack_id && last.pack_offset + last.stored_size === c.pack_offset;
      if (last && (!adjacent || bytes + c.stored_size > maxBytes)) {
        runs.push(run);
        run = [];
        bytes = 0;
      }
      run.push(c);
      bytes += c.stored_size;
    }
    if (run.length > 0) runs.push(run);
    return runs;
  }
}

async function readRange(blobs: BlobStore, key: string, start: number, length: number): Promise<Buffer> {
  const stream: Readable = await blobs.get(key, { start, end: start + length - 1 });
  const parts: Buffer[] = [];
  let got = 0;
  for await (const part of stream) {
    parts.push(part as Buffer);
    got += (part as Buffer).length;
  }
  return Buffer.concat(parts, got);
}

interface WrittenFrame {
  hash: string;
  size: number;
  offset: number;
  length: number;
  storedHash: string;
}

/**
 * One pack object being streamed to storage. Nothing names it until
 * ChunkStore records it; finish() resolves once the object is durable.
 */
export class PackWriter {
  readonly #stream = new PassThrough({ highWaterMark: 1 * MiB });
  /** Started by the first append: an empty pack never touches storage. */
  #put: Promise<{ size: number }> | undefined;
  readonly #frames: WrittenFrame[] = [];
  #size = 0;

  constructor(
    private readonly blobs: BlobStore,
    readonly key: string,
  ) {
    // An abort before the backend reads the stream must not be an unhandled 'error' event.
    this.#stream.on('error', () => {});
  }

  /** Bytes appended so far. */
  get size(): number {
    return this.#size;
  }

  /** Appends frames, waiting while storage is slower than the caller (the stream's high-water mark). */
  async append(frames: NewFrame[]): Promise<void> {
    if (frames.length === 0) return;
    if (!this.#put) {
      this.#put = this.blobs.put(this.key, this.#stream);
      this.#put.catch(() => {}); // surfaced below or by finish()
    }
    for (const f of frames) {
      this.#frames.push({
        hash: f.hash,
        size: f.size,
        offset: this.#size,
        length: f.frame.length,
        storedHash: f.storedHash ?? createHash('sha256').update(f.frame).digest('hex'),
      });
      this.#size += f.frame.length;
      if (!this.#stream.write(f.frame)) await Promise.race([once(this.#stream, 'drain'), this.#put]);
    }
  }

  /** Ends the object; resolves with its layout once durable (undefined for an empty pack, which is not stored). */
  async finish(): Promise<{ key: string; size: number; frames: WrittenFrame[] } | undefined> {
    if (!this.#put) return undefined;
    this.#stream.end();
    const { size } = await this.#put;
    if (size !== this.#size) throw new Error(`pack ${this.key}: stored ${size} bytes, wrote ${this.#size}`);
    return { key: this.key, size, frames: this.#frames };
  }

  /** Gives the pack up: the backend stores nothing (or the sweep removes what it left). */
  abort(reason: Error): void {
    this.#stream.destroy(reason);
  }
}
