// Messages between ChunkWorkerPool and pool-worker. Byte arrays arrive as plain
// Uint8Array (structured clone drops the Buffer prototype).
import type { ChunkingParams } from '../chunking/fastcdc.ts';
import type { NixCompression } from './codecs.ts';

/** A frame inside a packed buffer. */
export interface PackedFrame {
  offset: number;
  length: number;
  /** sha256 hex of the uncompressed data, which is exactly `size` bytes */
  hash: string;
  size: number;
}

/** A frame read back from storage: also checked against the hash of its stored bytes. */
export interface StoredFrame extends PackedFrame {
  storedHash: string;
}

export interface SessionOptions {
  /** How the input is compressed ('none': a raw NAR). */
  compression: NixCompression;
  /** Cut the NAR into chunks (ingest); without it the NAR is only validated and hashed. */
  chunking?: ChunkingParams;
  maxNarSize: number;
  /** Decompressed bytes allowed per input byte of a compressed upload, beyond its first 64 MiB (0 or absent: any). */
  maxExpansionRatio?: number;
  /** Names the input in errors. */
  inputName?: string;
  /** Largest `.ls` JSON kept; a larger listing is dropped (null). */
  listingCap: number;
  /** Hash the compressed input too (NarSummary.inputHash: a `nix copy` upload's name); default true. */
  hashInput?: boolean;
  /**
   * A client is waiting for this session's output: its tasks run before the other queued work of
   * its worker (ingests, compression), so serving is not slowed by storing.
   */
  urgent?: boolean;
}

export type SessionCall =
  | { kind: 'open'; options: SessionOptions }
  /** Input bytes (compressed as opened); replies with the chunks completed so far. */
  | { kind: 'input'; data: Uint8Array }
  /** Input read by the worker from a file, from where the last such call stopped up to byte `end`. */
  | { kind: 'inputFile'; path: string; end: number }
  /** Bytes of the served .nar.zst, in order; with `frames`, each frame is also decompressed as NAR input. */
  | { kind: 'served'; data: Uint8Array; frames?: PackedFrame[] }
  /** End of input: the last chunks, the NAR's hash, size and listing. */
  | { kind: 'end' }
  /** The served file's hash and size; the session is gone afterwards. */
  | { kind: 'digest' }
  | { kind: 'drop' };

export type WorkerRequest =
  /** zstd of one chunk; with `hashStored`, also the sha256 of the frame (what storage is checked against). */
  | { op: 'compress'; data: Uint8Array; level: number; hashStored: boolean }
  /** Frames packed into one transferred buffer; each must decompress to exactly `size` bytes hashing to `hash`. */
  | { op: 'verify'; packed: Uint8Array; frames: PackedFrame[] }
  /** Frames read from storage: verified, and decompressed if asked; the bytes come back in `data`. */
  | { op: 'decode'; packed: Uint8Array; frames: StoredFrame[]; decompress: boolean }
  | { op: 'session'; session: number; call: SessionCall };

/**
 * Sent by close() to an idle worker: it closes its port, so its event loop ends and the thread
 * exits by itself. (Worker.terminate() instead stops it with a pending termination, and zstd-napi's
 * finalizers, which call napi_adjust_external_memory during the teardown, then throw a
 * Napi::Error that aborts the whole process.)
 */
export const CLOSE = 'close';

/** A zstd frame that must decompress to exactly `size` bytes hashing (sha256 hex) to `hash`. */
export interface FrameCheck {
  frame: Uint8Array;
  hash: string;
  size: number;
}

export interface CutChunk {
  hash: string;
  size: number;
  data: Uint8Array;
}

export interface NarSummary {
  /** sha256 of the NAR, nix32 with the `sha256:` prefix */
  narHash: string;
  narSize: number;
  /** sha256 hex of the input as received (a compressed upload), when it was compressed */
  inputHash?: string;
  listing: string | null;
}

/** Why a task failed: the kinds that are the input's fault, so the server answers 4xx. */
export type FailureKind = 'invalid_nar' | 'codec' | 'too_large' | 'corrupt' | 'bad_frame';

export type WorkerReply =
  | { ok: true; size: number; compressed: Uint8Array; storedHash?: string }
  /** sha256 hex of each verified frame's bytes, in order */
  | { ok: true; verified: number; storedHashes: string[] }
  | { ok: true; data: Uint8Array }
  | { ok: true; chunks: CutChunk[]; summary?: NarSummary }
  | { ok: true; fileHash: string; fileSize: number }
  | { ok: true; done: true }
  | { ok: false; message: string; failure?: FailureKind };

/** Posted once by each worker when it is listening, so startup failures can be told from crashes. */
export const READY = 'ready';
