import { activeKeys } from './cache-keys.ts';
import type { Cache } from './caches.ts';

/**
 * Rendered narinfos (and misses) kept for a short time: popular paths are
 * asked for by every client, and a hit then costs no query. Writes on this
 * replica forget the cache's entries at once (a generation bump); other
 * replicas see a change within `ttlMs`. The key includes the cache's active
 * signing keys, so a key change is never served with the old signatures.
 */
export class NarInfoCache {
  readonly #entries = new Map<string, { text: string | null; expires: number }>();
  readonly #generations = new Map<number, number>();

  constructor(
    private readonly ttlMs = 2000,
    private readonly maxEntries = 50_000,
  ) {}

  /** The narinfo text, null for a known miss, undefined when not cached. */
  get(cache: Cache, hash: string): string | null | undefined {
    const key = this.#key(cache, hash);
    const e = this.#entries.get(key);
    if (!e) return undefined;
    if (e.expires < Date.now()) {
      this.#entries.delete(key);
      return undefined;
    }
    return e.text;
  }

  set(cache: Cache, hash: string, text: string | null): void {
    if (this.#entries.size >= this.maxEntries) this.#entries.delete(this.#entries.keys().next().value!);
    this.#entries.set(this.#key(cache, hash), { text, expires: Date.now() + this.ttlMs });
  }

  /** After a push or deletion in the cache: its entries are no longer used. */
  forgetCache(cacheId: number): void {
    this.#generations.set(cacheId, (this.#generations.get(cacheId) ?? 0) + 1);
  }

  #key(cache: Cache, hash: string): string {
    return `${cache.id}/${this.#generations.get(cache.id) ?? 0}/${activeKeys(cache.keys).map((k) => k.id).join(',')}/${hash}`;
  }
}
