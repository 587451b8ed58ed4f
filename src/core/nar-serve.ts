import { pipeline, Readable, type Transform } from 'node:stream';
import { constants as zlib, createBrotliCompress } from 'node:zlib';
import { createXzStoredStream, xzStoredLength } from '../compression/xz-stored.ts';
import type { ChunkRow, NarRow } from '../db/schema.ts';
import { listNar, type NarListing } from '../nix/nar/listing.ts';
import type { ChunkStore } from './chunk-store.ts';
import { unavailable } from './errors.ts';

/**
 * A NAR body assembled from its chunks: the stored zstd frames as they are
 * (a valid multi-frame .nar.zst) or decompressed, read with coalesced ranged
 * reads and checked in the worker pool. The first range is read and verified
 * before returning, so a NAR missing its start is an error response, not a
 * 200; a later missing or corrupt range destroys the stream, which aborts the
 * response short of its Content-Length — never a complete-looking truncation.
 */
export async function openNarBody(store: ChunkStore, chunks: ChunkRow[], decompress: boolean): Promise<Readable> {
  const it = store.read(chunks, { decompress });
  let first: IteratorResult<{ data: Buffer }>;
  try {
    first = await it.next();
  } catch (e) {
    throw unavailable('NAR data is unavailable; retry later', e);
  }
  async function* body(): AsyncGenerator<Buffer> {
    if (!first.done) yield first.value.data;
    for await (const piece of it) yield piece.data;
  }
  return Readable.from(body(), { objectMode: false, highWaterMark: 1 << 20 });
}

/**
 * How a stored NAR is served: its stored zstd frames (`.nar.zst`), the NAR itself (`.nar`), or
 * the NAR in the container a pulled-through path's narinfo named before it was ingested: a
 * stored (uncompressed) .xz, or brotli at its fastest setting (on the libuv thread pool).
 */
export type NarEncoding = 'zstd' | 'none' | 'xz' | 'br';

/** The Content-Length of a NAR served so; undefined when it is only known once sent (brotli). */
export function encodedLength(nar: NarRow, encoding: NarEncoding): number | undefined {
  switch (encoding) {
    case 'zstd':
      return nar.file_size;
    case 'none':
      return nar.nar_size;
    case 'xz':
      return xzStoredLength(nar.nar_size);
    case 'br':
      return undefined;
  }
}

/** The body of a stored NAR in an encoding; an error while it streams aborts it (see openNarBody). */
export async function openEncodedNar(store: ChunkStore, chunks: ChunkRow[], nar: NarRow, encoding: NarEncoding): Promise<Readable> {
  const body = await openNarBody(store, chunks, encoding !== 'zstd');
  let container: Transform;
  if (encoding === 'xz') container = createXzStoredStream(nar.nar_size);
  else if (encoding === 'br') container = createBrotliCompress({ params: { [zlib.BROTLI_PARAM_QUALITY]: 1, [zlib.BROTLI_PARAM_SIZE_HINT]: nar.nar_size } });
  else return body;
  return pipeline(body, container, () => {});
}

/**
 * The listing of a NAR without a stored one (ingested before listings were
 * stored, or over the size cap), parsed from its chunks. Stored data that
 * cannot be read or parsed is a 503, like a NAR body that cannot be served.
 */
export async function listStoredNar(store: ChunkStore, chunks: ChunkRow[]): Promise<NarListing> {
  const body = await openNarBody(store, chunks, true);
  try {
    return await listNar(body);
  } catch (e) {
    throw unavailable(`NAR data is unavailable: ${(e as Error).message}`);
  }
}
