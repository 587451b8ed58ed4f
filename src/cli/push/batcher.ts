/**
 * Groups paths that arrive one by one (watch-store): a batch is flushed once no
 * new path came for `quietMs`, or `maxMs` after its first path, whichever is sooner.
 */
export class PathBatcher {
  #pending = new Set<string>();
  #quiet: NodeJS.Timeout | undefined;
  #deadline: NodeJS.Timeout | undefined;

  constructor(
    private readonly onBatch: (paths: string[]) => void,
    private readonly quietMs = 2000,
    private readonly maxMs = 10_000,
  ) {}

  add(path: string): void {
    if (this.#pending.has(path)) return;
    this.#pending.add(path);
    clearTimeout(this.#quiet);
    this.#quiet = setTimeout(() => this.#flush(), this.quietMs);
    this.#deadline ??= setTimeout(() => this.#flush(), this.maxMs);
  }

  /** Stops the timers and returns what was never flushed. */
  close(): string[] {
    const left = [...this.#pending];
    this.#reset();
    return left;
  }

  #flush(): void {
    const batch = [...this.#pending];
    this.#reset();
    if (batch.length > 0) this.onBatch(batch);
  }

  #reset(): void {
    clearTimeout(this.#quiet);
    clearTimeout(this.#deadline);
    this.#quiet = undefined;
    this.#deadline = undefined;
    this.#pending = new Set();
  }
}
