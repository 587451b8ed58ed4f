// FastCDC throughput: node --import tsx bench/chunking.bench.ts
// Feeds the chunker 1 MiB pieces, as an upload stream would, so the figure includes
// the copy of every chunk into its own transferable Buffer.
import { performance } from 'node:perf_hooks';
import { DEFAULT_CHUNKING, FastCdcChunker } from '../src/chunking/index.ts';

const TOTAL = 256 * 1024 * 1024;
const PIECE = 1024 * 1024;
const RUNS = 3;

/** xorshift32: reproducible data without depending on the chunker's own PRNG. */
function xorshift32(seed: number): () => number {
  let x = seed | 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return x >>> 0;
  };
}

/** Segments of 64 KiB–4 MiB: about half random bytes, 30 % repeated text, 20 % zeros. */
function buildData(): Buffer {
  const rand = xorshift32(0x5eed);
  const data = Buffer.alloc(TOTAL);
  const words = new Uint32Array(data.buffer, data.byteOffset, TOTAL / 4);
  const text = Buffer.from('/nix/store/0123456789abcdfghijklmnpqrsvwxyz-hello-2.12.1/bin/hello: ELF 64-bit LSB\n');
  let pos = 0;
  while (pos < TOTAL) {
    const len = Math.min(TOTAL - pos, 64 * 1024 + (rand() % (4 * 1024 * 1024)));
    const kind = rand() % 10;
    if (kind < 5) {
      const start = Math.ceil(pos / 4);
      const end = Math.floor((pos + len) / 4);
      for (let w = start; w < end; w++) words[w] = rand();
    } else if (kind < 8) {
      for (let p = pos; p < pos + len; p += text.length) text.copy(data, p, 0, Math.min(text.length, pos + len - p));
    } // else: zeros, already there
    pos += len;
  }
  return data;
}

function chunkOnce(data: Buffer): { seconds: number; chunks: number } {
  const chunker = new FastCdcChunker(DEFAULT_CHUNKING);
  let chunks = 0;
  const t0 = performance.now();
  for (let off = 0; off < data.length; off += PIECE) chunks += chunker.push(data.subarray(off, off + PIECE)).length;
  chunks += chunker.finish().length;
  return { seconds: (performance.now() - t0) / 1000, chunks };
}

const data = buildData();
const runs = Array.from({ length: RUNS }, () => chunkOnce(data));
const seconds = runs.map((r) => r.seconds).sort((a, b) => a - b)[Math.floor(RUNS / 2)];
const mbPerS = data.length / 1e6 / seconds;
const meanChunk = data.length / runs[0].chunks;

console.log(
  JSON.stringify({
    bench: 'chunking',
    bytes: data.length,
    runs: RUNS,
    mbPerS: Math.round(mbPerS),
    chunks: runs[0].chunks,
    meanChunkBytes: Math.round(meanChunk),
    params: DEFAULT_CHUNKING,
  }),
);
console.log(
  `FastCDC: ${mbPerS.toFixed(0)} MB/s (median of ${RUNS}, 1 MB = 10^6 B), ${runs[0].chunks} chunks, mean ${(meanChunk / 1024).toFixed(1)} KiB`,
);
