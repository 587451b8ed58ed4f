// Messages between ChunkWorkerPool and pool-worker. Byte arrays arrive as plain
// Uint8Array (structured clone drops the Buffer prototype).

export type WorkerRequest =
  | { op: 'compress'; data: Uint8Array; level: number }
  | { op: 'verify'; frame: Uint8Array; expectedHash: string; maxSize: number };

export type WorkerReply =
  | { ok: true; hash: string; size: number; compressed: Uint8Array; storedHash: string }
  | { ok: true; data: Uint8Array }
  | { ok: false; message: string };

/** Posted once by each worker when it is listening, so startup failures can be told from crashes. */
export const READY = 'ready';
