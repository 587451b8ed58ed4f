import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import {
  CLOSE,
  READY,
  type CutChunk,
  type FailureKind,
  type FrameCheck,
  type NarSummary,
  type PackedFrame,
  type SessionCall,
  type SessionOptions,
  type StoredFrame,
  type WorkerReply,
  type WorkerRequest,
} from './pool-protocol.ts';

export type { CutChunk, FailureKind, FrameCheck, NarSummary, PackedFrame, SessionOptions, StoredFrame };

/** A task failed because of its input (a bad NAR, a corrupt frame), not because of the pool. */
export class WorkerInputError extends Error {
  constructor(
    readonly failure: FailureKind,
    message: string,
  ) {
    super(message);
    this.name = 'WorkerInputError';
  }
}

export interface CompressedChunk {
  size: number;
  compressed: Buffer;
  /** sha256 hex of the compressed bytes, when asked for (`hashStored`) */
  storedHash?: string;
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
  /** A session's task a client waits for (SessionOptions.urgent): it goes first on its worker. */
  urgent?: boolean;
  resolve: (reply: WorkerReply & { ok: true }) => void;
  reject: (err: Error) => void;
}

interface Slot {
  worker: Worker;
  task: Task | null;
  /** Tasks of the sessions bound to this worker, run in order before shared work. */
  pinned: Task[];
  sessions: number;
  /** Set by the worker's READY message; a worker that dies before it failed to start. */
  ready: boolean;
  /** Called once the task running here ends (close() waits for it). */
  onIdle?: () => void;
}

/** close() waits at most this long for a running task before ending its worker anyway. */
const CLOSE_GRACE_MS = 10_000;

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

/**
 * Hashing, zstd and NAR sessions on worker threads; tasks queue while every
 * worker is busy. A worker that crashes fails the tasks it held (and its
 * sessions) and is replaced; the rest of the pool carries on.
 */
export class ChunkWorkerPool {
  readonly #level: number;
  readonly #slots: Slot[] = [];
  readonly #queue: Task[] = [];
  #nextSession = 1;
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
   * The chunk's content hash is the caller's: it cut the chunk and hashed it already.
   * `hashStored` (the server, storing the frame) also hashes the frame.
   */
  async compress(chunk: Buffer, opts: { hashStored: boolean }): Promise<CompressedChunk> {
    const data = transferable(chunk);
    const reply = await this.#run({ op: 'compress', data, level: this.#level, hashStored: opts.hashStored }, [data.buffer as ArrayBuffer]);
    if (!('compressed' in reply)) throw new Error('ChunkWorkerPool: unexpected reply to compress');
    return { size: reply.size, compressed: toBuffer(reply.compressed), storedHash: reply.storedHash };
  }

  /**
   * Checks frames uploaded by a client: each must decompress to exactly its
   * declared size and hash. The batch travels as one message (a message per
   * 64 KiB chunk cost more than the work) in one packed copy, which also keeps
   * structured clone from sending whole buffers that frames are views of; the
   * caller keeps its frames. Rejects with `chunk <hash>: …` for the first bad one.
   * Resolves with the sha256 hex of each frame's bytes (what storage is checked against).
   */
  async verifyFrames(checks: FrameCheck[]): Promise<string[]> {
    if (checks.length === 0) return [];
    const packed = new Uint8Array(checks.reduce((n, c) => n + c.frame.length, 0));
    let offset = 0;
    const frames = checks.map(({ frame, hash, size }) => {
      packed.set(frame, offset);
      offset += frame.length;
      return { offset: offset - frame.length, length: frame.length, hash, size };
    });
    const reply = await this.#run({ op: 'verify', packed, frames }, [packed.buffer]);
    if (!('verified' in reply)) throw new Error('ChunkWorkerPool: unexpected reply to verify');
    return reply.storedHashes;
  }

  /**
   * Checks frames read from storage against their stored hash and, with
   * `decompress`, decompresses them (checking each against its content hash).
   * `packed` is transferred to the worker; the served bytes come back.
   */
  async decodeFrames(packed: Buffer, frames: StoredFrame[], decompress: boolean): Promise<Buffer> {
    const data = transferable(packed);
    const reply = await this.#run({ op: 'decode', packed: data, frames, decompress }, [data.buffer as ArrayBuffer]);
    if (!('data' in reply)) throw new Error('ChunkWorkerPool: unexpected reply to decode');
    return toBuffer(reply.data);
  }

  /** A NAR session bound to the least busy worker (its state lives there). */
  openSession(options: SessionOptions): NarSession {
    const slot = this.#slots.reduce((a, b) => (b.sessions < a.sessions ? b : a));
    return new NarSession(this, slot, this.#nextSession++, options);
  }

  /** @internal NarSession's way in: a task that must run on `slot`, after the ones queued there. */
  runOn(slot: object, request: WorkerRequest, transfer: ArrayBuffer[], urgent = false): Promise<WorkerReply & { ok: true }> {
    const s = slot as Slot;
    if (this.#stopped) return Promise.reject(this.#stopped);
    if (!this.#slots.includes(s)) return Promise.reject(new Error('chunk worker of this session crashed'));
    return new Promise((resolve, reject) => {
      s.pinned.push({ request, transfer, resolve, reject, urgent });
      this.#dispatch();
    });
  }

  /** @internal */
  bind(slot: object, delta: number): void {
    (slot as Slot).sessions += delta;
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
    for (const slot of this.#slots) {
      slot.task?.reject(reason);
      for (const task of slot.pinned.splice(0)) task.reject(reason);
    }
    // Each worker, once its running task is over, is asked to exit by itself (see CLOSE): a
    // terminated one can abort the whole process ("terminate called after throwing an instance of
    // 'Napi::Error'"). terminate() remains the fallback for a worker that does not exit.
    await Promise.all(this.#slots.map(async (slot) => {
      await this.#idle(slot);
      const exited = new Promise<void>((resolve) => slot.worker.once('exit', () => resolve()));
      slot.worker.postMessage(CLOSE);
      const timer = setTimeout(() => void slot.worker.terminate(), CLOSE_GRACE_MS);
      await exited;
      clearTimeout(timer);
    }));
  }

  #idle(slot: Slot): Promise<void> {
    if (!slot.task) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, CLOSE_GRACE_MS);
      timer.unref();
      slot.onIdle = () => {
        clearTimeout(timer);
        resolve();
      };
    });
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
      if (slot.task) continue;
      const task = takeUrgent(slot.pinned) ?? slot.pinned.shift() ?? this.#queue.shift();
      if (!task) continue;
      slot.task = task;
      // Idle workers are unref'd so the pool never keeps the process alive, but one with a
      // task must hold it open, or `await pool.compress()` could be cut short at exit.
      slot.worker.ref();
      slot.worker.postMessage(task.request, task.transfer);
    }
  }

  #spawn(): Slot {
    const worker = startWorker();
    const slot: Slot = { worker, task: null, pinned: [], sessions: 0, ready: false };
    worker.unref();
    worker.on('message', (reply: WorkerReply | typeof READY) => {
      if (reply === READY) {
        slot.ready = true;
        return;
      }
      const task = this.#finish(slot);
      if (reply.ok) task?.resolve(reply);
      else task?.reject(reply.failure ? new WorkerInputError(reply.failure, reply.message) : new Error(reply.message));
    });
    worker.on('error', (err) => this.#replace(slot, err));
    worker.on('exit', (code) => {
      slot.onIdle?.();
      this.#replace(slot, new Error(`chunk worker exited with code ${code}`));
    });
    return slot;
  }

  #finish(slot: Slot): Task | null {
    const task = slot.task;
    slot.task = null;
    slot.onIdle?.();
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
    for (const task of slot.pinned.splice(0)) task.reject(err);
    slot.worker.removeAllListeners();
    void slot.worker.terminate();
    this.#slots[index] = this.#spawn();
    this.#dispatch();
  }
}

/** The first urgent task of a worker's queue, taken out of it (urgent sessions' calls keep their order). */
function takeUrgent(pinned: Task[]): Task | undefined {
  const i = pinned.findIndex((t) => t.urgent);
  return i < 0 ? undefined : pinned.splice(i, 1)[0];
}

function transferable(chunk: Buffer): Uint8Array {
  const ownsBuffer =
    chunk.buffer instanceof ArrayBuffer && chunk.byteOffset === 0 && chunk.byteLength === chunk.buffer.byteLength;
  return ownsBuffer ? chunk : new Uint8Array(chunk);
}

function toBuffer(bytes: Uint8Array): Buffer {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/**
 * The stateful side of the pool: one NAR streamed through one worker, which
 * decompresses, validates, hashes and cuts it (ingest), or checks frames read
 * back (commit verification). Calls run in order; a failed call ends the session.
 */
export class NarSession {
  #closed = false;
  readonly #urgent: boolean;

  constructor(
    private readonly pool: ChunkWorkerPool,
    private readonly slot: object,
    private readonly id: number,
    options: SessionOptions,
  ) {
    this.#urgent = options.urgent ?? false;
    pool.bind(slot, 1);
    this.#opened = this.#call({ kind: 'open', options }, []);
    this.#opened.catch(() => {}); // surfaced by the next call
  }

  readonly #opened: Promise<WorkerReply & { ok: true }>;

  /** Input bytes (transferred); resolves with the chunks cut so far. */
  async input(data: Buffer): Promise<ReceivedChunk[]> {
    const bytes = transferable(data);
    return chunksOf(await this.#call({ kind: 'input', data: bytes }, [bytes.buffer as ArrayBuffer]));
  }

  /**
   * Input the worker reads itself from a file that is still being written: the bytes from where
   * the last call stopped up to `end`, which must be in the file already. No bytes cross threads.
   */
  async inputFile(path: string, end: number): Promise<ReceivedChunk[]> {
    return chunksOf(await this.#call({ kind: 'inputFile', path, end }, []));
  }

  /**
   * Served (.nar.zst) bytes in order; with `frames` they are also decompressed as the NAR.
   * The buffer is copied, or with `transfer` handed over (the caller no longer uses it).
   */
  async served(data: Buffer, frames?: PackedFrame[], opts: { transfer?: boolean } = {}): Promise<void> {
    const bytes = opts.transfer ? transferable(data) : new Uint8Array(data);
    await this.#call({ kind: 'served', data: bytes, frames }, [bytes.buffer as ArrayBuffer]);
  }

  async end(): Promise<{ chunks: ReceivedChunk[]; summary: NarSummary }> {
    const reply = await this.#call({ kind: 'end' }, []);
    if (!('summary' in reply) || !reply.summary) throw new Error('ChunkWorkerPool: unexpected reply to end');
    return { chunks: chunksOf(reply), summary: reply.summary };
  }

  async digest(): Promise<{ fileHash: string; fileSize: number }> {
    const reply = await this.#call({ kind: 'digest' }, []);
    this.#release();
    if (!('fileHash' in reply)) throw new Error('ChunkWorkerPool: unexpected reply to digest');
    return { fileHash: reply.fileHash, fileSize: reply.fileSize };
  }

  /** Frees the worker's state; safe to call at any time, and after digest(). */
  close(): void {
    if (this.#closed) return;
    this.#release();
    this.pool.runOn(this.slot, { op: 'session', session: this.id, call: { kind: 'drop' } }, [], this.#urgent).catch(() => {});
  }

  #release(): void {
    if (!this.#closed) this.pool.bind(this.slot, -1);
    this.#closed = true;
  }

  async #call(call: SessionCall, transfer: ArrayBuffer[]): Promise<WorkerReply & { ok: true }> {
    if (this.#closed) throw new Error('NAR session is closed');
    if (call.kind !== 'open') await this.#opened;
    return this.pool.runOn(this.slot, { op: 'session', session: this.id, call }, transfer, this.#urgent);
  }
}

/** A cut chunk on this side of the pool (its bytes as a Buffer). */
export interface ReceivedChunk {
  hash: string;
  size: number;
  data: Buffer;
}

function chunksOf(reply: WorkerReply & { ok: true }): ReceivedChunk[] {
  if (!('chunks' in reply)) throw new Error('ChunkWorkerPool: unexpected reply to a session call');
  return reply.chunks.map((c) => ({ hash: c.hash, size: c.size, data: toBuffer(c.data) }));
}
