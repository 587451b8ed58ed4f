// Messages between ChunkWorkerPool and pool-worker. Byte arrays arrive as plain
// Uint8Array (structured clone drops the Buffer prototype).

export type WorkerRequest =
  | { op: 'compress'; data: Uint8Array; level: number }
  /** Frames packed into one transferred buffer; each must decompress to exactly `size` bytes hashing to `hash`. */
  | { op: 'verify'; packed: Uint8Array; frames: { offset: number; length: number; hash: string; size: number }[] };

/** A zstd frame that must decompress to exactly `size` bytes hashing (sha256 hex) to `hash`. */
export interface FrameCheck {
  frame: Uint8Array;
  hash: string;
  size: number;
}

export type WorkerReply =
  | { ok: true; hash: string; size: number; compressed: Uint8Array; storedHash: string }
  | { ok: true; verified: number }
  | { ok: false; message: string };

/** Posted once by each worker when it is listening, so startup failures can be told from crashes. */
export const READY = 'ready';
