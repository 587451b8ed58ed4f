import { createHash } from 'node:crypto';
import type { Kysely } from 'kysely';
import { NarParser } from '../nix/nar/parser.ts';
import { zstdDecompressSync } from '../compression/zstd.ts';
import { formatSha256Nix32 } from '../nix/hash.ts';
import { claimNar, insertNar } from '../db/repos/nars.ts';
import type { ChunkRow, Database, NarRow } from '../db/schema.ts';
import type { ChunkStore } from './chunk-store.ts';
import { badRequest } from './errors.ts';

export interface NarClaim {
  narHash: string; // sha256:<nix32>
  narSize: number;
}

/**
 * Records a NAR made of stored chunks, after reading the chunks back: the
 * served file's hash and size come from the stored frames, and with
 * `verifyContent` the frames are decompressed and the NAR hash, size and
 * structure checked against the claim (chunks uploaded by a client).
 *
 * A NAR already recorded under the same hash is returned (claimed, see claimNar) — without
 * `verifyContent` only: the caller then streamed the whole NAR itself. A
 * client naming chunks must prove the chunks really make up that NAR, or it
 * could claim someone else's NAR by its hash.
 */
export async function commitNar(
  db: Kysely<Database>,
  store: ChunkStore,
  chunks: ChunkRow[],
  claim: NarClaim,
  opts: { verifyContent: boolean },
): Promise<NarRow> {
  if (!opts.verifyContent) {
    const existing = await claimNar(db, claim.narHash, Date.now());
    if (existing) return existing;
  }

  const fileHasher = createHash('sha256');
  let fileSize = 0;
  const narHasher = createHash('sha256');
  let narSize = 0;
  const parser = opts.verifyContent ? new NarParser() : undefined;
  let parseError: Error | undefined;
  parser?.on('error', (e) => (parseError ??= e));

  let i = 0;
  for await (const frame of store.frames(chunks, 8)) {
    fileHasher.update(frame);
    fileSize += frame.length;
    if (parser) {
      // The frame matched its stored hash (frames() checks), so it is the one verified at upload;
      // the NAR hash below covers the content as a whole.
      const data = zstdDecompressSync(frame, chunks[i].size);
      narHasher.update(data);
      narSize += data.length;
      if (narSize > claim.narSize) break;
      parser.write(data);
      if (parseError) throw badRequest(`invalid NAR: ${parseError.message}`);
    }
    i++;
  }
  if (parser) {
    await new Promise<void>((resolve) => parser.end(() => resolve()));
    if (narSize !== claim.narSize) {
      throw badRequest(`NarSize mismatch: claimed ${claim.narSize}, the chunks hold ${narSize} bytes`);
    }
    const actual = formatSha256Nix32(narHasher.digest());
    if (actual !== claim.narHash) throw badRequest(`NarHash mismatch: claimed ${claim.narHash}, got ${actual}`);
    if (parseError) throw badRequest(`invalid NAR: ${(parseError as Error).message}`);
  }
  return insertNar(
    db,
    {
      nar_hash: claim.narHash,
      nar_size: claim.narSize,
      file_hash: formatSha256Nix32(fileHasher.digest()),
      file_size: fileSize,
      chunk_count: chunks.length,
      created_at: Date.now(),
    },
    chunks.map((c) => c.id),
  );
}
