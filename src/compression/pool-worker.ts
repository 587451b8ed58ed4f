// Runs inside a worker thread of ChunkWorkerPool: hashing and zstd off the event loop.
import { createHash } from 'node:crypto';
import { parentPort } from 'node:worker_threads';
import { zstdCompressSync, zstdDecompressSync } from './zstd.ts';
import { READY, type WorkerReply, type WorkerRequest } from './pool-protocol.ts';

const port = parentPort;
if (!port) throw new Error('pool-worker must run in a worker thread');

const sha256 = (data: Uint8Array) => createHash('sha256').update(data).digest('hex');

/** A Buffer that owns its whole ArrayBuffer, so transferring it moves exactly its bytes. */
function owned(buf: Buffer): Buffer {
  if (buf.byteOffset === 0 && buf.byteLength === buf.buffer.byteLength) return buf;
  const copy = Buffer.allocUnsafeSlow(buf.length);
  buf.copy(copy);
  return copy;
}

function handle(req: WorkerRequest): { reply: WorkerReply; transfer: ArrayBuffer[] } {
  if (req.op === 'compress') {
    const data = Buffer.from(req.data.buffer, req.data.byteOffset, req.data.byteLength);
    const compressed = owned(zstdCompressSync(data, req.level));
    const reply: WorkerReply = {
      ok: true,
      hash: sha256(data),
      size: data.length,
      compressed,
      storedHash: sha256(compressed),
    };
    return { reply, transfer: [compressed.buffer as ArrayBuffer] };
  }
  for (const { offset, length, hash, size } of req.frames) {
    const frame = req.packed.subarray(offset, offset + length);
    let data: Buffer;
    try {
      data = zstdDecompressSync(frame, size);
    } catch (err) {
      throw new Error(`chunk ${hash}: not a valid zstd frame (${(err as Error).message})`);
    }
    if (data.length !== size) throw new Error(`chunk ${hash}: declared ${size} bytes, the frame holds ${data.length}`);
    if (sha256(data) !== hash) throw new Error(`chunk ${hash}: content hash mismatch`);
  }
  return { reply: { ok: true, verified: req.frames.length }, transfer: [] };
}

port.on('message', (req: WorkerRequest) => {
  try {
    const { reply, transfer } = handle(req);
    port.postMessage(reply, transfer);
  } catch (err) {
    port.postMessage({ ok: false, message: (err as Error).message } satisfies WorkerReply);
  }
});

port.postMessage(READY);
