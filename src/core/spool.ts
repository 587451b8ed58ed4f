import { close, open, writev } from 'node:fs';

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
