import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import type { ChunkRow } from '../db/schema.ts';
import { zstdDecompressSync } from '../compression/zstd.ts';
import type { ChunkStore } from './chunk-store.ts';
import { unavailable } from './errors.ts';

/**
 * A NAR body assembled from its chunks: the stored zstd frames as they are
 * (a valid multi-frame .nar.zst) or decompressed. The first chunk is fetched
 * before returning, so a NAR missing its start is an error response, not a
 * 200; a later missing or corrupt chunk destroys the stream, which aborts the
 * response short of its Content-Length — never a complete-looking truncation.
 */
export async function openNarBody(store: ChunkStore, chunks: ChunkRow[], decompress: boolean): Promise<Readable> {
  const frames = store.frames(chunks, 32);
  const it = decompress ? decompressFrames(frames, chunks) : frames;
  let first: IteratorResult<Buffer>;
  try {
    first = await it.next();
  } catch (e) {
    throw unavailable('NAR data is unavailable; retry later', e);
  }
  async function* body(): AsyncGenerator<Buffer> {
    if (!first.done) yield first.value;
    yield* it;
  }
  return Readable.from(body(), { objectMode: false, highWaterMark: 1 << 20 });
}

async function* decompressFrames(frames: AsyncGenerator<Buffer>, chunks: ChunkRow[]): AsyncGenerator<Buffer> {
  let i = 0;
  for await (const frame of frames) {
    const c = chunks[i++];
    const data = zstdDecompressSync(frame, c.size);
    if (data.length !== c.size || createHash('sha256').update(data).digest('hex') !== c.hash) {
      throw new Error(`chunk ${c.hash} does not match its hash after decompression`);
    }
    yield data;
  }
}
