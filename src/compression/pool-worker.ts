// Runs inside a worker thread of ChunkWorkerPool: hashing, zstd and NAR sessions off the event loop.
import { createHash } from 'node:crypto';
import { setPriority } from 'node:os';
import { parentPort } from 'node:worker_threads';
import { Scratch, zstdCompressSync, zstdDecompressInto } from './zstd.ts';
import { InputError, NarSession } from './nar-session.ts';
import { CLOSE, READY, type CutChunk, type SessionCall, type WorkerReply, type WorkerRequest } from './pool-protocol.ts';

const port = parentPort;
if (!port) throw new Error('pool-worker must run in a worker thread');

// Below the event loop's priority: when chunk work and requests compete for a core, the kernel runs the
// event loop first, so a push's hashing and compression never delay a narinfo lookup by more than a
// scheduler slice. (On Linux this lowers only this thread; elsewhere it may fail and is skipped.)
const WORKER_NICE = 10;
try {
  setPriority(WORKER_NICE);
} catch {
  // not permitted here: the workers keep the process's priority
}

const sha256 = (data: Uint8Array) => createHash('sha256').update(data).digest('hex');
const sessions = new Map<number, NarSession>();

/** A Buffer that owns its whole ArrayBuffer, so transferring it moves exactly its bytes. */
function owned(buf: Buffer): Buffer {
  if (buf.byteOffset === 0 && buf.byteLength === buf.buffer.byteLength) return buf;
  const copy = Buffer.allocUnsafeSlow(buf.length);
  buf.copy(copy);
  return copy;
}

const asBuffer = (u: Uint8Array) => Buffer.from(u.buffer, u.byteOffset, u.byteLength);

type Handled = { reply: WorkerReply; transfer: ArrayBuffer[] };

function chunksReply(chunks: CutChunk[], extra: object = {}): Handled {
  return { reply: { ok: true, chunks, ...extra }, transfer: chunks.map((c) => c.data.buffer as ArrayBuffer) };
}

async function session(id: number, call: SessionCall): Promise<Handled> {
  if (call.kind === 'open') {
    sessions.set(id, new NarSession(call.options));
    return { reply: { ok: true, done: true }, transfer: [] };
  }
  const s = sessions.get(id);
  if (call.kind === 'drop') {
    s?.dispose();
    sessions.delete(id);
    return { reply: { ok: true, done: true }, transfer: [] };
  }
  if (!s) throw new Error(`no session ${id} in this worker`);
  try {
    switch (call.kind) {
      case 'input':
        return chunksReply(await s.input(asBuffer(call.data)));
      case 'inputFile':
        return chunksReply(await s.inputFile(call.path, call.end));
      case 'served':
        await s.served(asBuffer(call.data), call.frames);
        return { reply: { ok: true, done: true }, transfer: [] };
      case 'end': {
        const { chunks, summary } = await s.end();
        return chunksReply(chunks, { summary });
      }
      case 'digest':
        sessions.delete(id);
        return { reply: { ok: true, ...s.digest() }, transfer: [] };
    }
  } catch (e) {
    s.dispose();
    sessions.delete(id); // a failed session takes no more input
    throw e;
  }
}

async function handle(req: WorkerRequest): Promise<Handled> {
  switch (req.op) {
    case 'compress': {
      const data = asBuffer(req.data);
      const compressed = owned(zstdCompressSync(data, req.level));
      // The caller cut and hashed the chunk already: only the frame's own hash may be new to it.
      const reply: WorkerReply = { ok: true, size: data.length, compressed, storedHash: req.hashStored ? sha256(compressed) : undefined };
      return { reply, transfer: [compressed.buffer as ArrayBuffer] };
    }
    case 'verify': {
      const storedHashes = req.frames.map((f) => {
        const frame = req.packed.subarray(f.offset, f.offset + f.length);
        checkFrame(frame, f.hash, f.size, 'bad_frame');
        return sha256(frame);
      });
      return { reply: { ok: true, verified: req.frames.length, storedHashes }, transfer: [] };
    }
    case 'decode': {
      // Decompressed, the frames go straight into one buffer of the NAR bytes they hold.
      const out = req.decompress ? Buffer.allocUnsafeSlow(req.frames.reduce((n, f) => n + f.size, 0)) : undefined;
      let at = 0;
      for (const f of req.frames) {
        const frame = req.packed.subarray(f.offset, f.offset + f.length);
        if (frame.length !== f.length || sha256(frame) !== f.storedHash) {
          throw new InputError('corrupt', `chunk ${f.hash} is corrupt in storage (stored bytes do not match their hash)`);
        }
        if (out) checkFrame(frame, f.hash, f.size, 'corrupt', out.subarray(at, (at += f.size)));
      }
      const data = out ?? req.packed;
      return { reply: { ok: true, data }, transfer: [data.buffer as ArrayBuffer] };
    }
    case 'session':
      return session(req.session, req.call);
  }
}

/** Frames checked and dropped are decompressed here, so a verification allocates nothing per chunk. */
const scratch = new Scratch();

/** Decompresses one frame, into `into` (default: the scratch), that must hold exactly `size` bytes hashing to `hash`. */
function checkFrame(frame: Uint8Array, hash: string, size: number, failure: 'bad_frame' | 'corrupt', into = scratch.take(size)): void {
  let held: number;
  try {
    held = zstdDecompressInto(frame, into);
  } catch (err) {
    throw new InputError(failure, `chunk ${hash}: not a valid zstd frame (${(err as Error).message})`);
  }
  if (held !== size) throw new InputError(failure, `chunk ${hash}: declared ${size} bytes, the frame holds ${held}`);
  if (sha256(into) !== hash) throw new InputError(failure, `chunk ${hash}: content hash mismatch`);
}

port.on('message', (req: WorkerRequest | typeof CLOSE) => {
  if (req === CLOSE) {
    port.close();
    return;
  }
  handle(req).then(
    ({ reply, transfer }) => port.postMessage(reply, transfer),
    (err: Error) =>
      port.postMessage({
        ok: false,
        message: err.message,
        failure: err instanceof InputError ? err.failure : undefined,
      } satisfies WorkerReply),
  );
});

port.postMessage(READY);
