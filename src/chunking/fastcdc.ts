// FastCDC (Xia et al., 2020) content-defined chunking with normalized chunking
// (level 2) and the "roll two bytes per iteration" optimisation.
// docs/chunking.md is the specification a client in another language can follow.

export interface ChunkingParams {
  minSize: number;
  avgSize: number;
  maxSize: number;
}

export const DEFAULT_CHUNKING: ChunkingParams = {
  minSize: 16 * 1024,
  avgSize: 64 * 1024,
  maxSize: 256 * 1024,
};

const MIN_ALLOWED = 64;
const MAX_ALLOWED = 16 * 1024 * 1024;

/** The seed of the gear table ("Loft" in ASCII); changing it changes every cut point. */
export const GEAR_SEED = 0x4c6f6674;

/**
 * splitmix32: a Weyl sequence (step 0x9e3779b9) finalised by MurmurHash3's fmix32.
 * Kept tiny and exact so any language can regenerate the same gear table.
 */
function splitmix32(seed: number): () => number {
  let state = seed | 0;
  return () => {
    state = (state + 0x9e3779b9) | 0;
    let z = state;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
    return (z ^ (z >>> 16)) | 0;
  };
}

function makeGearTable(seed: number): Int32Array {
  const next = splitmix32(seed);
  const table = new Int32Array(256);
  for (let i = 0; i < 256; i++) table[i] = next();
  return table;
}

export const GEAR: Int32Array = makeGearTable(GEAR_SEED);
// G<<1 lets the first byte of a pair be rolled as `(h << 2) + GEAR_LS[b]`.
const GEAR_LS: Int32Array = GEAR.map((g) => g << 1);

/**
 * Requires avgSize to be a power of two: the mask bit count is log2(avgSize), so a
 * non-power would silently round to a different average. min and max are free.
 */
export function validateChunkingParams(p: ChunkingParams): void {
  const { minSize, avgSize, maxSize } = p;
  for (const [name, v] of [['minSize', minSize], ['avgSize', avgSize], ['maxSize', maxSize]] as const) {
    if (!Number.isSafeInteger(v)) throw new Error(`chunking: ${name} must be an integer, got ${v}`);
  }
  if (minSize < MIN_ALLOWED) throw new Error(`chunking: minSize must be at least ${MIN_ALLOWED}, got ${minSize}`);
  if (maxSize > MAX_ALLOWED) throw new Error(`chunking: maxSize must be at most ${MAX_ALLOWED} (16 MiB), got ${maxSize}`);
  if (!(minSize < avgSize && avgSize < maxSize)) {
    throw new Error(`chunking: need minSize < avgSize < maxSize, got ${minSize} / ${avgSize} / ${maxSize}`);
  }
  if ((avgSize & (avgSize - 1)) !== 0) throw new Error(`chunking: avgSize must be a power of two, got ${avgSize}`);
}

/**
 * `bits` one-bits ending at bit 30. High bits of a gear hash depend on the most
 * bytes (bit k sees the last k+1 bytes); bit 31 stays clear so that `mask << 1`
 * still fits in 32 bits, which the two-byte loop needs.
 */
function topMask(bits: number): number {
  return (((1 << bits) - 1) << (31 - bits)) | 0;
}

export class FastCdcChunker {
  readonly #min: number;
  readonly #avg: number;
  readonly #max: number;
  readonly #maskS: number; // log2(avg)+2 bits: harder to match before avg
  readonly #maskL: number; // log2(avg)-2 bits: easier to match after avg
  // Bytes of the current, not yet cut chunk (copied, since callers may reuse their buffers).
  readonly #pending: Uint8Array;
  #pendingLen = 0;
  #hash = 0;

  constructor(params: ChunkingParams) {
    validateChunkingParams(params);
    this.#min = params.minSize;
    this.#avg = params.avgSize;
    this.#max = params.maxSize;
    const bits = 31 - Math.clz32(params.avgSize);
    this.#maskS = topMask(bits + 2);
    this.#maskL = topMask(bits - 2);
    this.#pending = new Uint8Array(params.maxSize);
  }

  push(data: Uint8Array): Buffer[] {
    const out: Buffer[] = [];
    let pos = 0;
    while (pos < data.length) {
      const cut = this.#findCut(data, pos);
      if (cut < 0) {
        this.#pending.set(data.subarray(pos), this.#pendingLen);
        this.#pendingLen += data.length - pos;
        break;
      }
      out.push(this.#emit(data, pos, cut));
      pos = cut;
    }
    return out;
  }

  finish(): Buffer[] {
    if (this.#pendingLen === 0) return [];
    return [this.#emit(this.#pending, 0, 0)];
  }

  /** Index in `data` just past the next cut point, or -1 if the chunk continues past `data`. */
  #findCut(data: Uint8Array, pos: number): number {
    const end = data.length;
    let k = this.#pendingLen; // offset inside the chunk of data[i]
    let i = pos;
    if (k < this.#min) {
      // Cut-point skipping: no cut can fall before min, so those bytes are not hashed.
      const skip = Math.min(this.#min - k, end - i);
      i += skip;
      k += skip;
      if (k < this.#min) return -1;
    }
    if (k < this.#avg) {
      const stop = Math.min(end, i + (this.#avg - k));
      const cut = this.#roll(data, i, stop, this.#maskS);
      if (cut >= 0) return cut;
      k += stop - i;
      i = stop;
      if (i === end) return -1;
    }
    const stop = Math.min(end, i + (this.#max - k));
    const cut = this.#roll(data, i, stop, this.#maskL);
    if (cut >= 0) return cut;
    return k + (stop - i) === this.#max ? stop : -1;
  }

  /**
   * The hot loop. Two bytes per iteration: after `(h << 2) + (G[a] << 1)` the value is
   * 2·H(a), so testing it against `mask << 1` is the same test as H(a) & mask; adding
   * G[b] then gives exactly H(b). Cuts are therefore identical to a one-byte loop.
   */
  #roll(data: Uint8Array, i: number, stop: number, mask: number): number {
    const gear = GEAR;
    const gearLs = GEAR_LS;
    const maskLs = mask << 1;
    let h = this.#hash;
    const pairEnd = i + ((stop - i) & ~1);
    while (i < pairEnd) {
      h = ((h << 2) + gearLs[data[i]]) | 0;
      if ((h & maskLs) === 0) return i + 1;
      h = (h + gear[data[i + 1]]) | 0;
      if ((h & mask) === 0) return i + 2;
      i += 2;
    }
    if (i < stop) {
      h = ((h << 1) + gear[data[i]]) | 0;
      if ((h & mask) === 0) return i + 1;
    }
    this.#hash = h;
    return -1;
  }

  /** Pending bytes + data[pos, cut) as a Buffer that owns its memory (transferable to workers). */
  #emit(data: Uint8Array, pos: number, cut: number): Buffer {
    const head = this.#pendingLen;
    const chunk = Buffer.allocUnsafeSlow(head + cut - pos);
    chunk.set(this.#pending.subarray(0, head), 0);
    chunk.set(data.subarray(pos, cut), head);
    this.#pendingLen = 0;
    this.#hash = 0;
    return chunk;
  }
}

export function chunkBuffer(data: Uint8Array, params: ChunkingParams = DEFAULT_CHUNKING): Buffer[] {
  const chunker = new FastCdcChunker(params);
  return [...chunker.push(data), ...chunker.finish()];
}
