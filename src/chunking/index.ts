export {
  DEFAULT_CHUNKING,
  FastCdcChunker,
  GEAR,
  GEAR_SEED,
  chunkBuffer,
  validateChunkingParams,
  type ChunkingParams,
} from './fastcdc.ts';
export { createChunkStream } from './chunk-stream.ts';
