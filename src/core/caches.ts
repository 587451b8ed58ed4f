import type { Kysely } from 'kysely';
import { LRUCache } from 'lru-cache';
import { SigningKey } from '../nix/signing.ts';
import { DEFAULT_STORE_DIR, isValidStoreDir } from '../nix/store-path.ts';
import { isValidCacheName } from '../token/patterns.ts';
import type { CacheRow, Database } from '../db/schema.ts';
import { deleteCache, findCacheByName, insertCache, listCaches, updateCache, type CachePatch } from '../db/repos/caches.ts';
import { badRequest, conflict, excerpt, notFound } from './errors.ts';

export interface CacheSettings {
  isPublic?: boolean;
  priority?: number;
  storeDir?: string;
  upstreamKeyNames?: string[];
  /** Seconds; null = the server default. */
  retentionSeconds?: number | null;
}

const CACHE_TTL_MS = 2000;
/** Memoised lookups (hits and misses); beyond this the least recently used are forgotten. */
const MEMO_ENTRIES = 1000;

export function invalidCacheNameMessage(name: string): string {
  return `invalid cache name '${excerpt(name)}': use 1-50 characters [A-Za-z0-9._+-], starting with a letter or digit`;
}

/**
 * Cache lookups are on every request; rows are memoised briefly so a replica
 * sees another replica's configuration change within CACHE_TTL_MS. Only valid
 * names are looked up, and the memo is bounded, so anonymous requests for
 * made-up names cannot grow it.
 */
export class CacheService {
  private memo = new LRUCache<string, { row: CacheRow | undefined }>({ max: MEMO_ENTRIES, ttl: CACHE_TTL_MS });

  constructor(
    private readonly db: Kysely<Database>,
    private readonly keyNamePrefix: string,
  ) {}

  async find(name: string): Promise<CacheRow | undefined> {
    if (!isValidCacheName(name)) return undefined;
    const hit = this.memo.get(name);
    if (hit) return hit.row;
    const row = await findCacheByName(this.db, name);
    this.memo.set(name, { row });
    return row;
  }

  /** How many names are memoised (never more than MEMO_ENTRIES). */
  get memoised(): number {
    return this.memo.size;
  }

  async get(name: string): Promise<CacheRow> {
    const row = await this.find(name);
    if (!row) throw notFound(`no such cache '${excerpt(name)}'`);
    return row;
  }

  list(): Promise<CacheRow[]> {
    return listCaches(this.db);
  }

  async create(name: string, s: CacheSettings): Promise<CacheRow> {
    if (!isValidCacheName(name)) throw badRequest(invalidCacheNameMessage(name));
    validateSettings(s);
    const key = SigningKey.generate(`${this.keyNamePrefix}-${name}-1`);
    const row = await insertCache(this.db, {
      name,
      signing_key: key.toString(),
      public_key: key.publicKey().toString(),
      is_public: s.isPublic ? 1 : 0,
      priority: s.priority ?? 41,
      store_dir: s.storeDir ?? DEFAULT_STORE_DIR,
      upstream_key_names: JSON.stringify(s.upstreamKeyNames ?? ['cache.nixos.org-1']),
      retention_seconds: s.retentionSeconds ?? null,
      created_at: Date.now(),
    });
    if (!row) throw conflict(`cache '${name}' already exists`);
    this.memo.delete(name);
    return row;
  }

  async configure(name: string, s: CacheSettings & { regenerateKey?: boolean }): Promise<CacheRow> {
    const cache = await this.get(name);
    validateSettings(s);
    const patch: CachePatch = {};
    if (s.isPublic !== undefined) patch.is_public = s.isPublic ? 1 : 0;
    if (s.priority !== undefined) patch.priority = s.priority;
    if (s.storeDir !== undefined) patch.store_dir = s.storeDir;
    if (s.upstreamKeyNames !== undefined) patch.upstream_key_names = JSON.stringify(s.upstreamKeyNames);
    if (s.retentionSeconds !== undefined) patch.retention_seconds = s.retentionSeconds;
    if (s.regenerateKey) {
      const key = SigningKey.generate(nextKeyName(SigningKey.parse(cache.signing_key).name));
      patch.signing_key = key.toString();
      patch.public_key = key.publicKey().toString();
    }
    if (Object.keys(patch).length === 0) throw badRequest('no setting to change was given');
    await updateCache(this.db, cache.id, patch);
    this.memo.delete(name);
    return this.get(name);
  }

  async destroy(name: string): Promise<void> {
    const cache = await this.get(name);
    await deleteCache(this.db, cache.id);
    this.memo.delete(name);
  }
}

/** `loft-main-1` → `loft-main-2`: a new key gets a new name so clients can trust both during rotation. */
function nextKeyName(name: string): string {
  const m = /^(.*)-(\d+)$/.exec(name);
  return m ? `${m[1]}-${Number(m[2]) + 1}` : `${name}-2`;
}

function validateSettings(s: CacheSettings): void {
  if (s.priority !== undefined && (!Number.isInteger(s.priority) || s.priority < 0 || s.priority > 10000)) {
    throw badRequest('priority must be an integer between 0 and 10000');
  }
  if (s.storeDir !== undefined && !isValidStoreDir(s.storeDir)) {
    throw badRequest(
      `invalid store_dir '${excerpt(JSON.stringify(s.storeDir))}': must be an absolute path without control characters, empty, '.' or '..' components, or a trailing slash`,
    );
  }
  if (s.upstreamKeyNames !== undefined) {
    for (const k of s.upstreamKeyNames) {
      if (typeof k !== 'string' || k.length === 0 || k.includes(':')) {
        throw badRequest(`invalid upstream key name '${k}'`);
      }
    }
  }
  if (
    s.retentionSeconds !== undefined &&
    s.retentionSeconds !== null &&
    (!Number.isInteger(s.retentionSeconds) || s.retentionSeconds < 0)
  ) {
    throw badRequest('retention_period must be a non-negative number of seconds or null');
  }
}
