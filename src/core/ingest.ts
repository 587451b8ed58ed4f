import type { Kysely } from 'kysely';
import type { ChunkingParams } from '../chunking/fastcdc.ts';
import type { NixCompression } from '../compression/codecs.ts';
import { WorkerInputError, type NarSession, type ReceivedChunk } from '../compression/pool.ts';
import { formatSha256Nix32 } from '../nix/hash.ts';
import { claimChunks } from '../db/repos/chunks.ts';
import type { ChunkRow, Database } from '../db/schema.ts';
import type { ChunkStore, PackWriter } from './chunk-store.ts';
import { badRequest, tooLarge } from './errors.ts';

export interface IngestedNar {
  narHash: string;
  narSize: number;
  chunks: ChunkRow[];
  /** Bytes of chunks that were not stored yet (the rest deduplicated). */
  newChunkBytes: number;
  /** `sha256:<nix32>` and size of the served .nar.zst (the chunks' frames, concatenated). */
  fileHash: string;
  fileSize: number;
  /** The `.ls` JSON, or null when larger than the listing cap. */
  listing: string | null;
  /** `sha256:<nix32>` of the input as received, when it was compressed. */
  inputHash?: string;
}

export interface IngestOptions {
  chunking: ChunkingParams;
  maxNarSize: number;
  /** The input's compression (a `nix copy` upload); default a raw NAR. */
  compression?: NixCompression;
  /** Named in decompression errors. */
  inputName?: string;
  /** See SessionOptions.maxExpansionRatio: a decompression bomb is refused after bounded work. */
  maxExpansionRatio?: number;
  /** Largest `.ls` JSON stored; default 4 MiB. */
  listingCap?: number;
}

/** Chunks looked up and stored together; two windows are in memory at most. */
const WINDOW_CHUNKS = 64;
/** Input is handed to the worker in pieces of about this size, two in flight. */
const INPUT_BATCH = 1024 * 1024;
const INPUTS_IN_FLIGHT = 2;
/** Frames of the open pack kept to hash repeats of them without a read (it cannot be read before it is recorded). */
const PACK_FRAME_CACHE = 8 * 1024 * 1024;
export const DEFAULT_LISTING_CAP = 4 * 1024 * 1024;

/**
 * Takes a NAR stream (raw, or compressed as `opts.compression`) and stores the
 * chunks the server lacks. The CPU work runs in one worker session (decompress,
 * validate, hash, FastCDC, chunk SHA-256, listing, served-file hash) and the
 * pool (zstd); this function only moves bytes, looks chunks up a window at a
 * time and appends new frames to the ingest's pack, recorded when it reaches
 * the target size and at the end. Memory is bounded by the constants above,
 * whatever the NAR size. Nothing here is visible to clients: the NAR is
 * recorded by commitNar.
 */
export async function ingestNar(
  db: Kysely<Database>,
  store: ChunkStore,
  input: AsyncIterable<Buffer>,
  opts: IngestOptions,
): Promise<IngestedNar> {
  const session = store.pool.openSession({
    compression: opts.compression ?? 'none',
    chunking: opts.chunking,
    maxNarSize: opts.maxNarSize,
    maxExpansionRatio: opts.maxExpansionRatio,
    inputName: opts.inputName,
    listingCap: opts.listingCap ?? DEFAULT_LISTING_CAP,
  });
  const packer = new IngestPacker(db, store, session);
  try {
    const inFlight: Promise<ReceivedChunk[]>[] = [];
    let pieces: Buffer[] = [];
    let batched = 0;
    const send = async () => {
      const batch = pieces.length === 1 ? pieces[0] : Buffer.concat(pieces, batched);
      pieces = [];
      batched = 0;
      const cut = session.input(batch);
      cut.catch(() => {}); // awaited in order below
      inFlight.push(cut);
      if (inFlight.length >= INPUTS_IN_FLIGHT) await packer.take(await inFlight.shift()!);
    };
    for await (const piece of input) {
      pieces.push(piece);
      batched += piece.length;
      if (batched >= INPUT_BATCH) await send();
    }
    if (batched > 0) await send();
    while (inFlight.length > 0) await packer.take(await inFlight.shift()!);
    const { chunks, summary } = await session.end();
    await packer.take(chunks);
    const stored = await packer.finish();
    const { fileHash, fileSize } = await session.digest();
    return {
      narHash: summary.narHash,
      narSize: summary.narSize,
      ...stored,
      fileHash,
      fileSize,
      listing: summary.listing,
      inputHash: summary.inputHash && formatSha256Nix32(Buffer.from(summary.inputHash, 'hex')),
    };
  } catch (e) {
    await packer.abort(e as Error);
    throw inputError(e, opts);
  } finally {
    session.close();
  }
}

/** The worker's verdict on bad input, as the error the client gets. */
function inputError(e: unknown, opts: IngestOptions): unknown {
  if (!(e instanceof WorkerInputError)) return e;
  switch (e.failure) {
    case 'too_large':
      return tooLarge(e.message);
    case 'codec':
      return badRequest(`cannot decompress ${opts.inputName ?? 'the upload'} as ${opts.compression}: ${e.message}`);
    default:
      return badRequest(`invalid NAR: ${e.message}`);
  }
}

/**
 * The window and pack side of ingestNar: dedup lookups, compression in the
 * pool, appends to the open pack, and the served bytes fed in NAR order to the
 * session for the file hash (read back only for chunks stored before).
 */
class IngestPacker {
  readonly #hashes: string[] = [];
  /** Chunks with a row: found in the database or recorded from a finished pack. */
  readonly #rows = new Map<string, ChunkRow>();
  /** Chunks appended to the open pack, with their frame while the cache has room. */
  #inPack = new Map<string, Buffer | null>();
  #cached = 0;
  #pack: PackWriter | undefined;
  #window: string[] = [];
  #fresh = new Map<string, Buffer>();
  #storing: Promise<void> = Promise.resolve();
  #newChunkBytes = 0;

  constructor(
    private readonly db: Kysely<Database>,
    private readonly store: ChunkStore,
    private readonly session: NarSession,
  ) {}

  async take(chunks: ReceivedChunk[]): Promise<void> {
    for (const c of chunks) {
      this.#hashes.push(c.hash);
      this.#window.push(c.hash);
      if (!this.#rows.has(c.hash) && !this.#inPack.has(c.hash)) this.#fresh.set(c.hash, c.data);
      if (this.#window.length >= WINDOW_CHUNKS) await this.#flush();
    }
  }

  async finish(): Promise<{ chunks: ChunkRow[]; newChunkBytes: number }> {
    await this.#flush();
    await this.#storing;
    await this.#closePack();
    return { chunks: this.#hashes.map((h) => this.#rows.get(h)!), newChunkBytes: this.#newChunkBytes };
  }

  /** On an error: lets the window in flight settle, and gives the open pack up (nothing names it). */
  async abort(reason: Error): Promise<void> {
    await this.#storing.catch(() => {});
    this.#pack?.abort(reason);
  }

  async #flush(): Promise<void> {
    const window = this.#window;
    const fresh = this.#fresh;
    this.#window = [];
    this.#fresh = new Map();
    await this.#storing;
    this.#storing = this.#store(window, fresh);
    this.#storing.catch(() => {}); // awaited at the next flush or in finish()
  }

  async #store(window: string[], candidates: Map<string, Buffer>): Promise<void> {
    // A chunk the previous window stored since this one was cut is not looked up again.
    const unseen = [...candidates].filter(([hash]) => !this.#rows.has(hash) && !this.#inPack.has(hash));
    const existing = await claimChunks(this.db, unseen.map(([hash]) => hash), Date.now());
    for (const [hash, row] of existing) this.#rows.set(hash, row);
    const fresh = unseen.filter(([hash]) => !existing.has(hash));
    const frames = await Promise.all(
      fresh.map(async ([hash, data]) => ({ hash, ...(await this.store.pool.compress(data, { hashStored: true })) })),
    );
    const written = new Map<string, Buffer>();
    if (frames.length > 0) {
      this.#pack ??= this.store.openPack();
      await this.#pack.append(frames.map((f) => ({ hash: f.hash, size: f.size, frame: f.compressed, storedHash: f.storedHash })));
      for (const f of frames) {
        written.set(f.hash, f.compressed);
        const keep = this.#cached + f.compressed.length <= PACK_FRAME_CACHE;
        if (keep) this.#cached += f.compressed.length;
        this.#inPack.set(f.hash, keep ? f.compressed : null);
        this.#newChunkBytes += f.size;
      }
    }
    // A repeat of a frame the cache dropped can only be read once its pack is recorded.
    if (window.some((h) => !written.has(h) && this.#inPack.get(h) === null)) await this.#closePack();
    await this.#served(window, written);
    if (this.#pack && this.#pack.size >= this.store.packTargetSize) await this.#closePack();
  }

  /** Feeds the window's frames, in NAR order, to the session's file hash. */
  async #served(window: string[], written: Map<string, Buffer>): Promise<void> {
    const frameOf = (h: string) => written.get(h) ?? this.#inPack.get(h) ?? undefined;
    const toRead = [...new Set(window.filter((h) => !frameOf(h)))].map((h) => this.#rows.get(h)!);
    const read = new Map<string, Buffer>();
    for await (const piece of this.store.read(toRead, { decompress: false })) {
      let offset = 0;
      for (const c of piece.chunks) {
        read.set(c.hash, piece.data.subarray(offset, offset + c.stored_size));
        offset += c.stored_size;
      }
    }
    await this.session.served(Buffer.concat(window.map((h) => frameOf(h) ?? read.get(h)!)));
  }

  async #closePack(): Promise<void> {
    const pack = this.#pack;
    this.#pack = undefined;
    this.#inPack = new Map();
    this.#cached = 0;
    if (!pack) return;
    for (const row of await this.store.record(pack)) this.#rows.set(row.hash, row);
  }
}
