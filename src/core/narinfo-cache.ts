import { LRUCache } from 'lru-cache';
import { activeKeys } from './cache-keys.ts';
import type { Cache } from './caches.ts';

/**
 * Rendered narinfos (and misses) kept for a short time: popular paths are
 * asked for by every client, and a hit then costs no query. Writes on this
 * replica forget the cache's entries at once (a generation bump); other
 * replicas see a change within `ttlMs`. The key includes the cache's active
 * signing keys, so a key change is never served with the old signatures. At
 * most `maxEntries` are kept (least recently used go first), so lookups of
 * made-up hashes cannot grow it.
 */
export class NarInfoCache {
  readonly #entries: LRUCache<string, { text: string | null }>;
  readonly #generations = new Map<number, number>();

  constructor(ttlMs = 2000, maxEntries = 50_000) {
    this.#entries = new LRUCache({ max: maxEntries, ttl: ttlMs });
  }

  /** The narinfo text, null for a known miss, undefined when not cached. */
  get(cache: Cache, hash: string): string | null | undefined {
    return this.#entries.get(this.#key(cache, hash))?.text;
  }

  set(cache: Cache, hash: string, text: string | null): void {
    this.#entries.set(this.#key(cache, hash), { text });
  }

  /** After a push or deletion in the cache: its entries are no longer used. */
  forgetCache(cacheId: number): void {
    this.#generations.set(cacheId, (this.#generations.get(cacheId) ?? 0) + 1);
  }

  #key(cache: Cache, hash: string): string {
    return `${cache.id}/${this.#generations.get(cache.id) ?? 0}/${activeKeys(cache.keys).map((k) => k.id).join(',')}/${hash}`;
  }
}
