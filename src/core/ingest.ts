import { createHash } from 'node:crypto';
import type { Kysely } from 'kysely';
import { FastCdcChunker, type ChunkingParams } from '../chunking/fastcdc.ts';
import { NarParser } from '../nix/nar/parser.ts';
import { formatSha256Nix32 } from '../nix/hash.ts';
import { claimChunks } from '../db/repos/chunks.ts';
import type { ChunkRow, Database } from '../db/schema.ts';
import type { ChunkStore } from './chunk-store.ts';
import { badRequest, tooLarge } from './errors.ts';

export interface IngestedNar {
  narHash: string;
  narSize: number;
  chunks: ChunkRow[];
  /** Bytes of chunks that were not stored yet (the rest deduplicated). */
  newChunkBytes: number;
}

export interface IngestOptions {
  chunking: ChunkingParams;
  maxNarSize: number;
}

/** Chunks looked up and stored together; two windows are in memory at most. */
const WINDOW_CHUNKS = 64;

/**
 * Takes an uncompressed NAR stream: validates its structure, hashes it, cuts
 * it into content-defined chunks and stores the chunks the server lacks, a
 * window at a time (one lookup and one insert per window; the next window is
 * read while one is stored). Memory is bounded by two windows whatever the
 * NAR size. Nothing here is visible to clients: the NAR is recorded by commitNar.
 */
export async function ingestNar(
  db: Kysely<Database>,
  store: ChunkStore,
  input: AsyncIterable<Buffer>,
  opts: IngestOptions,
): Promise<IngestedNar> {
  const chunker = new FastCdcChunker(opts.chunking);
  const parser = new NarParser();
  let parseError: Error | undefined;
  parser.on('error', (e) => (parseError ??= e));
  const narHasher = createHash('sha256');
  let narSize = 0;
  const hashes: string[] = [];
  const rows = new Map<string, ChunkRow>();
  let newChunkBytes = 0;

  let window = new Map<string, Buffer>();
  let storing: Promise<void> = Promise.resolve();
  const storeWindow = async (w: Map<string, Buffer>) => {
    const existing = await claimChunks(db, [...w.keys()], Date.now());
    for (const [hash, row] of existing) rows.set(hash, row);
    const fresh = [...w].filter(([hash]) => !existing.has(hash));
    const frames = await Promise.all(fresh.map(([, data]) => store.pool.compress(data)));
    for (const row of await store.storeFrames(frames.map((f) => ({ hash: f.hash, size: f.size, frame: f.compressed, storedHash: f.storedHash })))) {
      rows.set(row.hash, row);
      newChunkBytes += row.size;
    }
  };
  const flush = async () => {
    const w = window;
    window = new Map();
    await storing;
    storing = storeWindow(w);
    storing.catch(() => {}); // awaited at the next flush or below
  };
  const take = async (chunks: Buffer[]) => {
    for (const chunk of chunks) {
      const hash = createHash('sha256').update(chunk).digest('hex');
      hashes.push(hash);
      if (!rows.has(hash) && !window.has(hash)) window.set(hash, chunk);
      if (window.size >= WINDOW_CHUNKS) await flush();
    }
  };

  try {
    for await (const piece of input) {
      narSize += piece.length;
      if (narSize > opts.maxNarSize) throw tooLarge(`NAR exceeds the server limit of ${opts.maxNarSize} bytes`);
      narHasher.update(piece);
      parser.write(piece);
      if (parseError) throw badRequest(`invalid NAR: ${parseError.message}`);
      await take(chunker.push(piece));
    }
    await new Promise<void>((resolve) => parser.end(() => resolve()));
    if (parseError) throw badRequest(`invalid NAR: ${(parseError as Error).message}`);
    await take(chunker.finish());
    await flush();
    await storing;
  } finally {
    await storing.catch(() => {}); // on an early error: let the window in flight finish first
  }
  return {
    narHash: formatSha256Nix32(narHasher.digest()),
    narSize,
    chunks: hashes.map((h) => rows.get(h)!),
    newChunkBytes,
  };
}
