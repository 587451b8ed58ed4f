import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { READY, type FrameCheck, type WorkerReply, type WorkerRequest } from './pool-protocol.ts';

export type { FrameCheck };

export interface CompressedChunk {
  /** sha256 hex of the uncompressed data */
  hash: string;
  size: number;
  compressed: Buffer;
  /** sha256 hex of the compressed bytes */
  storedHash: string;
}

export interface ChunkWorkerPoolOptions {
  /** default os.availableParallelism() */
  threads?: number;
  /** zstd level, default 3 */
  level?: number;
}

interface Task {
  request: WorkerRequest;
  transfer: ArrayBuffer[];
  resolve: (reply: WorkerReply & { ok: true }) => void;
  reject: (err: Error) => void;
}

interface Slot {
  worker: Worker;
  task: Task | null;
  /** Set by the worker's READY message; a worker that dies before it failed to start. */
  ready: boolean;
}

// Under tsx (tests) this module is .ts; compiled, it is .js next to pool-worker.js.
const RUNNING_TS = import.meta.url.endsWith('.ts');
const WORKER_URL = new URL('./pool-worker' + (RUNNING_TS ? '.ts' : '.js'), import.meta.url);

/**
 * Node 20 does not apply the inherited `--import tsx` hooks to a worker's entry module
 * ("Unknown file extension .ts"), so under tsx a one-line bootstrap loads the entry
 * through tsx's own API. Compiled code takes the plain path.
 */
function startWorker(): Worker {
  if (!RUNNING_TS) return new Worker(WORKER_URL);
  const api = JSON.stringify(import.meta.resolve('tsx/esm/api'));
  const entry = JSON.stringify(WORKER_URL.href);
  return new Worker(`import(${api}).then(({ tsImport }) => tsImport(${entry}, ${entry}));`, { eval: true });
}

/** Hashing and zstd for chunks on worker threads; tasks queue while every worker is busy. */
export class ChunkWorkerPool {
  readonly #level: number;
  readonly #slots: Slot[] = [];
  readonly #queue: Task[] = [];
  /** Why new work is refused: close(), or a worker that could not start. */
  #stopped: Error | null = null;

  constructor(opts: ChunkWorkerPoolOptions = {}) {
    const threads = opts.threads ?? availableParallelism();
    if (!Number.isInteger(threads) || threads < 1) throw new Error(`ChunkWorkerPool: threads must be ≥ 1, got ${threads}`);
    this.#level = opts.level ?? 3;
    for (let i = 0; i < threads; i++) this.#slots.push(this.#spawn());
  }

  /**
   * The chunk's ArrayBuffer is transferred (and so detached here) when the chunk owns all
   * of it, as FastCdcChunker's chunks do; a view into a larger buffer is copied instead.
   */
  async compress(chunk: Buffer): Promise<CompressedChunk> {
    const data = transferable(chunk);
    const reply = await this.#run({ op: 'compress', data, level: this.#level }, [data.buffer as ArrayBuffer]);
    if (!('hash' in reply)) throw new Error('ChunkWorkerPool: unexpected reply to compress');
    return { hash: reply.hash, size: reply.size, compressed: toBuffer(reply.compressed), storedHash: reply.storedHash };
  }

  /**
   * Checks frames uploaded by a client: each must decompress to exactly its
   * declared size and hash. The batch travels as one message (a message per
   * 64 KiB chunk cost more than the work) in one packed copy, which also keeps
   * structured clone from sending whole buffers that frames are views of; the
   * caller keeps its frames. Rejects with `chunk <hash>: …` for the first bad one.
   */
  async verifyFrames(checks: FrameCheck[]): Promise<void> {
    if (checks.length === 0) return;
    const packed = new Uint8Array(checks.reduce((n, c) => n + c.frame.length, 0));
    let offset = 0;
    const frames = checks.map(({ frame, hash, size }) => {
      packed.set(frame, offset);
      offset += frame.length;
      return { offset: offset - frame.length, length: frame.length, hash, size };
    });
    const reply = await this.#run({ op: 'verify', packed, frames }, [packed.buffer]);
    if (!('verified' in reply)) throw new Error('ChunkWorkerPool: unexpected reply to verify');
  }

  /** Tasks waiting for a free worker, and tasks running (for the metrics). */
  get load(): { queued: number; busy: number } {
    return { queued: this.#queue.length, busy: this.#slots.filter((slot) => slot.task).length };
  }

  async close(): Promise<void> {
    if (!this.#stopped) await this.#stop(new Error('ChunkWorkerPool is closed'));
  }

  async #stop(reason: Error): Promise<void> {
    this.#stopped = reason;
    for (const task of this.#queue.splice(0)) task.reject(reason);
    for (const slot of this.#slots) slot.task?.reject(reason);
    await Promise.all(this.#slots.map((slot) => slot.worker.terminate()));
  }

  #run(request: WorkerRequest, transfer: ArrayBuffer[]): Promise<WorkerReply & { ok: true }> {
    if (this.#stopped) return Promise.reject(this.#stopped);
    return new Promise((resolve, reject) => {
      this.#queue.push({ request, transfer, resolve, reject });
      this.#dispatch();
    });
  }

  #dispatch(): void {
    for (const slot of this.#slots) {
      if (this.#queue.length === 0) return;
      if (slot.task) continue;
      const task = this.#queue.shift()!;
      slot.task = task;
      // Idle workers are unref'd so the pool never keeps the process alive, but one with a
      // task must hold it open, or `await pool.compress()` could be cut short at exit.
      slot.worker.ref();
      slot.worker.postMessage(task.request, task.transfer);
    }
  }

  #spawn(): Slot {
    const worker = startWorker();
    const slot: Slot = { worker, task: null, ready: false };
    worker.unref();
    worker.on('message', (reply: WorkerReply | typeof READY) => {
      if (reply === READY) {
        slot.ready = true;
        return;
      }
      const task = this.#finish(slot);
      if (reply.ok) task?.resolve(reply);
      else task?.reject(new Error(reply.message));
    });
    worker.on('error', (err) => this.#replace(slot, err));
    worker.on('exit', (code) => this.#replace(slot, new Error(`chunk worker exited with code ${code}`)));
    return slot;
  }

  #finish(slot: Slot): Task | null {
    const task = slot.task;
    slot.task = null;
    slot.worker.unref();
    this.#dispatch();
    return task;
  }

  /** A crashed worker fails its task and is replaced; 'error' and 'exit' may both fire. */
  #replace(slot: Slot, err: Error): void {
    const index = this.#slots.indexOf(slot);
    if (index < 0 || this.#stopped) return;
    if (!slot.ready) {
      // Respawning a worker that cannot load (e.g. a missing pool-worker.js) would loop forever.
      void this.#stop(new Error(`chunk worker failed to start: ${err.message}`));
      return;
    }
    slot.task?.reject(err);
    slot.task = null;
    slot.worker.removeAllListeners();
    void slot.worker.terminate();
    this.#slots[index] = this.#spawn();
    this.#dispatch();
  }
}

function transferable(chunk: Buffer): Uint8Array {
  const ownsBuffer =
    chunk.buffer instanceof ArrayBuffer && chunk.byteOffset === 0 && chunk.byteLength === chunk.buffer.byteLength;
  return ownsBuffer ? chunk : new Uint8Array(chunk);
}

function toBuffer(bytes: Uint8Array): Buffer {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}
