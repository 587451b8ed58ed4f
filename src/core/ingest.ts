import { createHash } from 'node:crypto';
import type { Kysely } from 'kysely';
import { FastCdcChunker, type ChunkingParams } from '../chunking/fastcdc.ts';
import { NarParser } from '../nix/nar/parser.ts';
import { formatSha256Nix32 } from '../nix/hash.ts';
import { findChunksByHash } from '../db/repos/chunks.ts';
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
  /** Chunks processed concurrently (bounds memory: each holds ≤ maxSize bytes). */
  parallelism?: number;
}

/**
 * Takes an uncompressed NAR stream: validates its structure, hashes it, cuts
 * it into content-defined chunks and stores the chunks the server lacks.
 * Memory is bounded by `parallelism × maxSize` whatever the NAR size.
 * Nothing here is visible to clients: the NAR is recorded by commitNar.
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
  const slots = new Slots(opts.parallelism ?? 32);
  const results: Promise<ChunkRow>[] = [];
  const known = new Map<string, Promise<ChunkRow>>();
  let newChunkBytes = 0;

  const submit = async (chunk: Buffer) => {
    const hash = createHash('sha256').update(chunk).digest('hex');
    let row = known.get(hash);
    if (!row) {
      await slots.acquire();
      row = (async () => {
        try {
          const existing = (await findChunksByHash(db, [hash])).get(hash);
          if (existing) return existing;
          newChunkBytes += chunk.length;
          return await store.storeRaw(chunk);
        } finally {
          slots.release();
        }
      })();
      row.catch(() => {}); // awaited below; avoid an unhandled rejection meanwhile
      known.set(hash, row);
    }
    results.push(row);
  };

  for await (const piece of input) {
    narSize += piece.length;
    if (narSize > opts.maxNarSize) throw tooLarge(`NAR exceeds the server limit of ${opts.maxNarSize} bytes`);
    narHasher.update(piece);
    parser.write(piece);
    if (parseError) throw badRequest(`invalid NAR: ${parseError.message}`);
    for (const c of chunker.push(piece)) await submit(c);
  }
  await new Promise<void>((resolve) => parser.end(resolve)).catch(() => {});
  await new Promise((r) => setImmediate(r));
  if (parseError) throw badRequest(`invalid NAR: ${(parseError as Error).message}`);
  for (const c of chunker.finish()) await submit(c);
  const chunks = await Promise.all(results);
  return { narHash: formatSha256Nix32(narHasher.digest()), narSize, chunks, newChunkBytes };
}

/** A counting semaphore. */
class Slots {
  private waiters: (() => void)[] = [];
  constructor(private free: number) {}
  async acquire(): Promise<void> {
    if (this.free > 0) {
      this.free--;
      return;
    }
    await new Promise<void>((r) => this.waiters.push(r));
  }
  release(): void {
    const w = this.waiters.shift();
    if (w) w();
    else this.free++;
  }
}
