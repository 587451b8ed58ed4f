/** Port to the revocation store (implemented over the database elsewhere). */
export interface RevocationList {
  isRevoked(jti: string): Promise<boolean>;
}

export interface CachedRevocationOptions {
  /** Refresh at most this often; also the longest a revocation takes to bite. Default 5000. */
  ttlMs?: number;
  /** While the loader fails, keep serving the last good set this long after it was loaded. Default 60000. */
  maxStaleMs?: number;
  /** Clock, injectable for tests. */
  now?: () => number;
}

/**
 * Keeps the whole revoked-jti set in memory so checking a token costs no
 * query. Concurrent callers share one in-flight load, failed loads are
 * retried at most once per ttl, and when the store stays down past
 * maxStaleMs isRevoked throws (fail closed: the server should answer 503).
 */
export class CachedRevocationList implements RevocationList {
  readonly #loader: () => Promise<Set<string>>;
  readonly #ttlMs: number;
  readonly #maxStaleMs: number;
  readonly #now: () => number;
  #revoked: ReadonlySet<string> | undefined;
  #loadedAt = -Infinity;
  #attemptedAt = -Infinity;
  #lastError: unknown;
  #inflight: Promise<void> | undefined;

  constructor(loader: () => Promise<Set<string>>, opts: CachedRevocationOptions = {}) {
    this.#loader = loader;
    this.#ttlMs = opts.ttlMs ?? 5000;
    this.#maxStaleMs = opts.maxStaleMs ?? 60_000;
    this.#now = opts.now ?? Date.now;
  }

  async isRevoked(jti: string): Promise<boolean> {
    if (!this.#revoked || this.#now() - this.#attemptedAt >= this.#ttlMs) {
      // .finally runs asynchronously, after the assignment, even if the loader throws synchronously.
      this.#inflight ??= this.#reload().finally(() => (this.#inflight = undefined));
      await this.#inflight;
    }
    return this.#usable().has(jti);
  }

  /** Never rejects: the outcome is recorded and judged by #usable. */
  async #reload(): Promise<void> {
    this.#attemptedAt = this.#now();
    try {
      this.#revoked = await this.#loader();
      this.#loadedAt = this.#now();
      this.#lastError = undefined;
    } catch (e) {
      this.#lastError = e;
    }
  }

  #usable(): ReadonlySet<string> {
    if (this.#revoked && this.#now() - this.#loadedAt <= this.#maxStaleMs) return this.#revoked;
    throw new Error('revocation list unavailable', { cause: this.#lastError });
  }
}
