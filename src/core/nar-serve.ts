import { Readable } from 'node:stream';
import type { ChunkRow } from '../db/schema.ts';
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
