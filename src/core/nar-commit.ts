import type { Kysely } from 'kysely';
import { WorkerInputError, type PackedFrame } from '../compression/pool.ts';
import { claimNar, insertNar } from '../db/repos/nars.ts';
import type { ChunkRow, Database, NarRow } from '../db/schema.ts';
import type { ChunkStore } from './chunk-store.ts';
import { badRequest, unavailable } from './errors.ts';
import { DEFAULT_LISTING_CAP } from './ingest.ts';

export interface NarClaim {
  narHash: string; // sha256:<nix32>
  narSize: number;
  /** The served file's hash and size, when the caller computed them while ingesting (ingestNar does). */
  fileHash?: string;
  fileSize?: number;
  /** The `.ls` JSON to store with the NAR (null: none). */
  listing?: string | null;
}

/**
 * Records a NAR made of stored chunks. What ingestNar computed (file hash and
 * size, listing) is taken as is; without it the chunks are read back once
 * (coalesced ranged reads, hashed in a worker) for the served file's hash.
 * With `verifyContent` (chunks uploaded by a client) the frames are also
 * decompressed in the worker and the NAR hash, size and structure checked
 * against the claim, and the listing built there.
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
  let { fileHash, fileSize, listing = null } = claim;
  if (opts.verifyContent || fileHash === undefined || fileSize === undefined) {
    ({ fileHash, fileSize, listing } = await readBack(store, chunks, claim, opts.verifyContent));
  }
  return insertNar(
    db,
    {
      nar_hash: claim.narHash,
      nar_size: claim.narSize,
      file_hash: fileHash,
      file_size: fileSize,
      chunk_count: chunks.length,
      created_at: Date.now(),
    },
    chunks.map((c) => c.id),
    listing,
  );
}

async function readBack(
  store: ChunkStore,
  chunks: ChunkRow[],
  claim: NarClaim,
  verify: boolean,
): Promise<{ fileHash: string; fileSize: number; listing: string | null }> {
  const session = store.pool.openSession({ compression: 'none', maxNarSize: claim.narSize, listingCap: DEFAULT_LISTING_CAP });
  try {
    let listing: string | null = null;
    // Verifying, the session decompresses every frame and the NAR hash is checked below, so the
    // per-frame stored-hash check (another sha256 of every byte) would prove nothing more.
    for await (const piece of store.read(chunks, { decompress: false, readAhead: 4, unchecked: verify })) {
      let offset = 0;
      const frames: PackedFrame[] | undefined = verify
        ? piece.chunks.map((c) => {
            offset += c.stored_size;
            return { offset: offset - c.stored_size, length: c.stored_size, hash: c.hash, size: c.size };
          })
        : undefined;
      await session.served(piece.data, frames, { transfer: true });
    }
    if (verify) {
      const { summary } = await session.end();
      if (summary.narSize !== claim.narSize) {
        throw badRequest(`NarSize mismatch: claimed ${claim.narSize}, the chunks hold ${summary.narSize} bytes`);
      }
      if (summary.narHash !== claim.narHash) {
        await assertStoredIntact(store, chunks); // a corrupt pack is the server's fault, not the client's
        throw badRequest(`NarHash mismatch: claimed ${claim.narHash}, got ${summary.narHash}`);
      }
      listing = summary.listing;
    }
    return { ...(await session.digest()), listing };
  } catch (e) {
    if (e instanceof WorkerInputError && (e.failure === 'invalid_nar' || e.failure === 'too_large')) {
      throw badRequest(e.failure === 'too_large' ? `NarSize mismatch: the chunks hold more than the claimed ${claim.narSize} bytes` : `invalid NAR: ${e.message}`);
    }
    throw e;
  } finally {
    session.close();
  }
}

/** Reads the chunks again with every frame checked against its stored hash; throws for a corrupt one. */
async function assertStoredIntact(store: ChunkStore, chunks: ChunkRow[]): Promise<void> {
  try {
    for await (const piece of store.read(chunks, { decompress: false })) void piece;
  } catch (e) {
    throw unavailable(`the stored chunks of this NAR cannot be read back intact: ${(e as Error).message}`, e);
  }
}
