import { Transform } from 'node:stream';
import { FastCdcChunker, type ChunkingParams } from './fastcdc.ts';

// Objects count toward the readable high-water mark, so 4 chunks (≤ 4 × maxSize bytes)
// is enough read-ahead without holding much memory while the consumer is slow.
const READ_AHEAD_CHUNKS = 4;

/** Bytes in, content-defined chunks (Buffers that own their memory) out. */
export function createChunkStream(params: ChunkingParams): Transform {
  const chunker = new FastCdcChunker(params);
  return new Transform({
    readableObjectMode: true,
    readableHighWaterMark: READ_AHEAD_CHUNKS,
    transform(data: Buffer, _encoding, callback) {
      // Transform defers `callback` while the readable side is full, which is the backpressure.
      for (const chunk of chunker.push(data)) this.push(chunk);
      callback();
    },
    flush(callback) {
      for (const chunk of chunker.finish()) this.push(chunk);
      callback();
    },
  });
}
