import type { Readable } from 'node:stream';
import type { Kysely } from 'kysely';
import { assertDecompressible, compressionFromExtension } from '../compression/codecs.ts';
import { decodeNixBase32 } from '../nix/base32.ts';
import { parseNarInfo, type PathInfo } from '../nix/narinfo.ts';
import { NixFormatError } from '../nix/errors.ts';
import type { ChunkingParams } from '../chunking/fastcdc.ts';
import type { CacheRow, Database, NarRow } from '../db/schema.ts';
import { findVisibleChunks } from '../db/repos/chunks.ts';
import { findNarInCache, findNarUpload, recordNarUpload } from '../db/repos/nars.ts';
import type { ChunkStore } from './chunk-store.ts';
import { ingestNar } from './ingest.ts';
import { commitNar } from './nar-commit.ts';
import { recordPath, validatePathMetadata } from './paths.ts';
import type { PathOutcome } from '../api/v1.ts';
import { badRequest, tooLarge } from './errors.ts';

export interface PushDeps {
  db: Kysely<Database>;
  store: ChunkStore;
  chunking: ChunkingParams;
  maxNarSize: number;
  /** Overrides of maxNarSize by cache name. */
  maxNarSizePerCache?: Record<string, number>;
  /** Decompressed bytes allowed per received byte of a compressed upload (0 = any). */
  maxExpansionRatio?: number;
}

/** The largest NAR `cache` accepts. */
export function narSizeLimit(d: Pick<PushDeps, 'maxNarSize' | 'maxNarSizePerCache'>, cache: CacheRow): number {
  return d.maxNarSizePerCache?.[cache.name] ?? d.maxNarSize;
}

export interface UploadResult {
  kind: 'uploaded' | 'deduplicated';
  /** Whether the path was new, already there with this NAR, or replaced (`?replace=true`). */
  outcome: PathOutcome;
  nar_size: number;
  /** Uncompressed bytes of chunks the caller could not already read (so nothing about other caches). */
  new_chunk_bytes: number;
}

const NAR_FILE_RE = /^([0-9a-df-np-sv-z]{52})\.nar(\.[a-z0-9]+)?$/;

/**
 * `nix copy --to http://…` PUTs `nar/<filehash>.nar.<ext>`: the file is
 * decompressed, its name checked against the hash of the bytes received, and
 * the NAR ingested. It stays invisible until its narinfo arrives.
 */
export async function receiveNixNar(
  d: PushDeps,
  cache: CacheRow,
  fileName: string,
  body: Readable,
): Promise<NarRow> {
  const m = NAR_FILE_RE.exec(fileName);
  if (!m) throw badRequest(`invalid NAR file name '${fileName}': expected <nix-base32 sha256>.nar[.xz|.zst|.br]`);
  let compression;
  try {
    compression = compressionFromExtension(fileName);
    assertDecompressible(compression);
    decodeNixBase32(m[1]);
  } catch (e) {
    throw badRequest((e as Error).message);
  }
  let ingested;
  try {
    // Decompressing, like all the work per byte, happens in the ingest's worker session.
    ingested = await ingestNar(d.db, d.store, body, {
      chunking: d.chunking,
      maxNarSize: narSizeLimit(d, cache),
      maxExpansionRatio: d.maxExpansionRatio,
      compression,
      inputName: fileName,
    });
  } catch (e) {
    body.destroy();
    throw e;
  }
  const fileHash = ingested.inputHash ?? ingested.narHash;
  if (fileHash !== `sha256:${m[1]}`) {
    throw badRequest(`file hash mismatch: the name says sha256:${m[1]}, the body hashes to ${fileHash}`);
  }
  const narRow = await commitNar(d.db, d.store, ingested.chunks, ingested, { verifyContent: false });
  await recordNarUpload(d.db, cache.id, fileName, narRow.id, Date.now());
  return narRow;
}

/**
 * The narinfo PUT that completes a `nix copy` upload (or re-signs a path): it
 * must name a NAR uploaded to this cache, or one the cache already serves.
 */
export async function receiveNixNarInfo(
  d: PushDeps,
  cache: CacheRow,
  hashPart: string,
  text: string,
  sub: string | null,
  replace = false,
): Promise<PathOutcome> {
  let info;
  try {
    info = parseNarInfo(text);
  } catch (e) {
    if (e instanceof NixFormatError) throw badRequest(`invalid narinfo: ${e.message}`);
    throw e;
  }
  const p = validatePathMetadata(cache, info, hashPart);
  const fileName = info.url.startsWith('nar/') ? info.url.slice(4) : info.url;
  let nar = await findNarUpload(d.db, cache.id, fileName);
  const served = /^([0-9a-df-np-sv-z]{52})\.nar\.zst$/.exec(fileName);
  if (!nar && served) nar = await findNarInCache(d.db, cache.id, { fileHash: `sha256:${served[1]}` });
  if (!nar) {
    throw badRequest(`narinfo for ${p.storePath} refers to ${info.url}, which was not uploaded to cache '${cache.name}'`);
  }
  return recordPath(d.db, cache, p, nar, sub, { replace });
}

/**
 * Loft's own single-request push: metadata in a header, the raw NAR as the body. `pullable` are
 * the caches the caller may read: the answer counts as known only chunks visible through them,
 * so it never tells whether content exists in a cache the caller cannot read.
 */
export async function uploadPath(
  d: PushDeps,
  cache: CacheRow,
  pullable: number[],
  meta: PathInfo,
  body: AsyncIterable<Buffer>,
  sub: string | null,
  replace = false,
): Promise<UploadResult> {
  const p = validatePathMetadata(cache, meta);
  const limit = narSizeLimit(d, cache);
  if (p.narSize > limit) throw tooLarge(`NarSize ${p.narSize} exceeds the limit of ${limit} bytes for cache '${cache.name}'`);
  const ingested = await ingestNar(d.db, d.store, body, { chunking: d.chunking, maxNarSize: limit });
  if (ingested.narSize !== p.narSize) {
    throw badRequest(`NarSize mismatch: claimed ${p.narSize}, received ${ingested.narSize} bytes`);
  }
  if (ingested.narHash !== p.narHash) throw badRequest(`NarHash mismatch: claimed ${p.narHash}, received ${ingested.narHash}`);
  const unique = [...new Map(ingested.chunks.map((c) => [c.hash, c])).values()];
  const known = await findVisibleChunks(d.db, unique.map((c) => c.hash), pullable, cache.id);
  const newToCaller = unique.filter((c) => !known.has(c.hash)).reduce((sum, c) => sum + c.size, 0);
  const nar = await commitNar(d.db, d.store, ingested.chunks, ingested, { verifyContent: false });
  const outcome = await recordPath(d.db, cache, p, nar, sub, { replace });
  return { kind: newToCaller === 0 ? 'deduplicated' : 'uploaded', outcome, nar_size: p.narSize, new_chunk_bytes: newToCaller };
}
