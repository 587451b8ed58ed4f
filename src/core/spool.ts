import { close, open, writev } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';

/** Reads of followSpool. */
const FOLLOW_PIECE = 1024 * 1024;

/**
 * A file written in order from pieces as they arrive (an upstream NAR file being downloaded):
 * pieces appended while a write is in flight go out together in the next one (writev), so the
 * thread pool sees a few large writes rather than one per piece. `written` is the length of
 * the file's prefix on disk, which a reader behind the writer (the verifying worker) may read.
 */
export class SpoolFile {
  written = 0;
  #queued: Buffer[] = [];
  #queuedDone: Array<() => void> = [];
  #writing = false;
  #failure: Error | undefined;
  #flushed: Array<{ resolve(): void; reject(e: Error): void }> = [];
  #growth: Array<() => void> = [];

  private constructor(
    readonly path: string,
    private readonly fd: number,
    private readonly onWritten: () => void,
  ) {}

  /** Creates (or truncates) the file; `onWritten` is called each time `written` grows. */
  static open(path: string, onWritten: () => void): Promise<SpoolFile> {
    return new Promise((resolve, reject) => open(path, 'w', 0o600, (e, fd) => (e ? reject(e) : resolve(new SpoolFile(path, fd, onWritten)))));
  }

  /** Queues a piece; `done` is called once it is on disk, or the file failed (the piece may be reused then). */
  append(piece: Buffer, done: () => void): void {
    if (this.#failure) return done();
    this.#queued.push(piece);
    this.#queuedDone.push(done);
    if (!this.#writing) this.#write();
  }

  /** Resolves once everything appended is on disk; rejects if a write failed. */
  flush(): Promise<void> {
    if (this.#failure) return Promise.reject(this.#failure);
    if (!this.#writing) return Promise.resolve();
    return new Promise((resolve, reject) => this.#flushed.push({ resolve, reject }));
  }

  /** Resolves the next time `written` grows. */
  grown(): Promise<void> {
    return new Promise((resolve) => this.#growth.push(resolve));
  }

  close(): Promise<void> {
    return new Promise((resolve, reject) => close(this.fd, (e) => (e ? reject(e) : resolve())));
  }

  #write(): void {
    const pieces = this.#queued;
    const dones = this.#queuedDone;
    this.#queued = [];
    this.#queuedDone = [];
    this.#writing = true;
    const finish = (e: Error | null) => {
      for (const done of dones) done();
      if (e) {
        this.#failure = e;
        for (const done of this.#queuedDone.splice(0)) done();
        this.#queued = [];
      }
      if (!e && this.#queued.length > 0) return this.#write();
      this.#writing = false;
      for (const f of this.#flushed.splice(0)) (e ? f.reject(e) : f.resolve());
    };
    const writeFrom = (buffers: Buffer[]) => {
      writev(this.fd, buffers, this.written, (e, n) => {
        if (e) return finish(e);
        this.written += n;
        this.onWritten();
        for (const wake of this.#growth.splice(0)) wake();
        const rest = remainder(buffers, n);
        if (rest.length > 0) writeFrom(rest);
        else finish(null);
      });
    };
    writeFrom(pieces);
  }
}

/** The buffers left once the first `n` bytes of them are written (a short writev). */
function remainder(buffers: Buffer[], n: number): Buffer[] {
  let i = 0;
  while (i < buffers.length && n >= buffers[i]!.length) n -= buffers[i++]!.length;
  if (i === buffers.length) return [];
  return [buffers[i]!.subarray(n), ...buffers.slice(i + 1)];
}

/**
 * Reads a spool file (opened as `file`, closed when done) from byte `from` as it is written,
 * handing each piece to `write` (awaited: the reader goes at its consumer's pace, one reused
 * buffer), and holds the file's last byte back until `end` gives the file's final length: a
 * reader never gets a whole file that was not accepted. Resolves once it has read the whole
 * file; rejects when `end` does.
 */
export async function followSpool(
  file: FileHandle,
  spool: SpoolFile,
  from: number,
  end: Promise<number>,
  write: (piece: Buffer) => Promise<void>,
): Promise<void> {
  let final: number | undefined;
  let refused: { error: unknown } | undefined;
  const settled = end.then(
    (n) => void (final = n),
    (error: unknown) => void (refused = { error }),
  );
  const buffer = Buffer.allocUnsafe(FOLLOW_PIECE);
  try {
    for (let at = from; ; ) {
      if (refused) throw refused.error;
      const limit = final ?? spool.written - 1;
      if (at >= limit) {
        if (final !== undefined) return;
        await Promise.race([spool.grown(), settled]);
        continue;
      }
      const { bytesRead } = await file.read(buffer, 0, Math.min(buffer.length, limit - at), at);
      if (bytesRead === 0) throw new Error(`${spool.path} ends at ${at} bytes, before ${limit}`);
      at += bytesRead;
      await write(buffer.subarray(0, bytesRead));
    }
  } finally {
    await file.close();
  }
}
