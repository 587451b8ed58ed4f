import type { Kysely } from 'kysely';
import { LRUCache } from 'lru-cache';
import { SigningKey } from '../nix/signing.ts';
import { DEFAULT_STORE_DIR, isValidStoreDir } from '../nix/store-path.ts';
import { isValidCacheName } from '../token/patterns.ts';
import type { CacheKeyRow, CacheRow, Database } from '../db/schema.ts';
import { deleteCacheHistory } from '../db/repos/usage.ts';
import { deleteCache, findCacheByName, insertCache, listCaches, updateCache, type CachePatch } from '../db/repos/caches.ts';
import { findCacheKey, insertCacheKey, listCacheKeys, setCacheKeyState } from '../db/repos/cache-keys.ts';
import { activeKeys, nextKeyName, planKeyChanges, type KeyChanges, type KeyPlan } from './cache-keys.ts';
import { badRequest, conflict, excerpt, LoftError, notFound } from './errors.ts';

/** A cache with its signing keys (oldest first). */
export interface Cache extends CacheRow {
  keys: CacheKeyRow[];
}

/** Key changes a configure request may ask for, besides explicit keys. */
export interface ConfigureKeys extends KeyChanges {
  /** Replace every key with a generated one (the next name). */
  regenerateKey?: boolean;
  /** Add a generated key (the next name) that signs alongside the current ones. */
  generateKey?: boolean;
}
import { isLocalUpstream, storedUpstreams } from './upstreams.ts';
import { deleteUpstreamLookups } from '../db/repos/upstream-lookups.ts';
import type { UpstreamSetting } from '../api/v1.ts';

export interface CacheSettings {
  isPublic?: boolean;
  priority?: number;
  storeDir?: string;
  upstreamKeyNames?: string[];
  /** Seconds; null = the server default. */
  retentionSeconds?: number | null;
  upstreams?: UpstreamSetting[];
  /** Seconds; null = the server default. */
  upstreamRetentionSeconds?: number | null;
}

const CACHE_TTL_MS = 2000;
/** Names whose URLs the server's own pages take (/dashboard/{cache}/{hash}). */
const RESERVED_NAMES = new Set(['dashboard']);
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
  private memo = new LRUCache<string, { row: Cache | undefined }>({ max: MEMO_ENTRIES, ttl: CACHE_TTL_MS });

  constructor(
    private readonly db: Kysely<Database>,
    private readonly keyNamePrefix: string,
  ) {}

  async find(name: string): Promise<Cache | undefined> {
    if (!isValidCacheName(name)) return undefined;
    const hit = this.memo.get(name);
    if (hit) return hit.row;
    const row = await findCacheByName(this.db, name);
    const cache = row && { ...row, keys: await listCacheKeys(this.db, [row.id]) };
    this.memo.set(name, { row: cache });
    return cache;
  }

  /** How many names are memoised (never more than MEMO_ENTRIES). */
  get memoised(): number {
    return this.memo.size;
  }

  async get(name: string): Promise<Cache> {
    const row = await this.find(name);
    if (!row) throw notFound(`no such cache '${excerpt(name)}'`);
    return row;
  }

  async list(): Promise<Cache[]> {
    const rows = await listCaches(this.db);
    const keys = await listCacheKeys(this.db, rows.map((r) => r.id));
    return rows.map((r) => ({ ...r, keys: keys.filter((k) => k.cache_id === r.id) }));
  }

  /** Without `keys`, the server generates the cache's first key. */
  async create(name: string, s: CacheSettings, keys?: SigningKey[]): Promise<Cache> {
    if (!isValidCacheName(name)) throw badRequest(invalidCacheNameMessage(name));
    if (RESERVED_NAMES.has(name)) throw badRequest(`cache name '${name}' is reserved: the server's web dashboard lives at /${name}`);
    validateSettings(s);
    const storeDir = s.storeDir ?? DEFAULT_STORE_DIR;
    const upstreams = await this.#upstreamsJson(name, storeDir, s.upstreams ?? [], '[]');
    const plan = planKeyChanges(name, [], { add: keys?.length ? keys : [SigningKey.generate(`${this.keyNamePrefix}-${name}-1`)] });
    const row = await this.db.transaction().execute(async (tx) => {
      const inserted = await insertCache(tx, {
        name,
        signing_key: plan.primary.secret,
        public_key: plan.primary.publicKey,
        is_public: s.isPublic ? 1 : 0,
        priority: s.priority ?? 41,
        store_dir: storeDir,
        upstream_key_names: JSON.stringify(s.upstreamKeyNames ?? ['cache.nixos.org-1']),
        retention_seconds: s.retentionSeconds ?? null,
        upstreams,
        upstream_retention_seconds: s.upstreamRetentionSeconds ?? null,
        created_at: Date.now(),
      });
      if (inserted) await writeKeys(tx, inserted.id, plan);
      return inserted;
    });
    if (!row) throw conflict(`cache '${name}' already exists`);
    this.memo.delete(name);
    return this.get(name);
  }

  async configure(name: string, s: CacheSettings, k: ConfigureKeys = {}): Promise<Cache> {
    const cache = await this.get(name);
    validateSettings(s);
    const patch: CachePatch = {};
    if (s.isPublic !== undefined) patch.is_public = s.isPublic ? 1 : 0;
    if (s.priority !== undefined) patch.priority = s.priority;
    if (s.storeDir !== undefined) patch.store_dir = s.storeDir;
    if (s.upstreamKeyNames !== undefined) patch.upstream_key_names = JSON.stringify(s.upstreamKeyNames);
    if (s.retentionSeconds !== undefined) patch.retention_seconds = s.retentionSeconds;
    if (s.upstreams !== undefined) {
      patch.upstreams = await this.#upstreamsJson(name, s.storeDir ?? cache.store_dir, s.upstreams, cache.upstreams);
    }
    if (s.upstreamRetentionSeconds !== undefined) patch.upstream_retention_seconds = s.upstreamRetentionSeconds;
    const changes: KeyChanges = { replaceWith: k.replaceWith, add: k.add, retire: k.retire };
    if (k.regenerateKey) changes.replaceWith = [...(changes.replaceWith ?? []), generatedKey(cache.keys)];
    if (k.generateKey) changes.add = [...(changes.add ?? []), generatedKey(cache.keys)];
    const keysChange = Object.values(changes).some((v) => v !== undefined);
    if (Object.keys(patch).length === 0 && !keysChange) throw badRequest('no setting to change was given');
    const plan = planKeyChanges(name, cache.keys, changes);
    if (plan.primary.publicKey !== cache.public_key) {
      patch.signing_key = plan.primary.secret;
      patch.public_key = plan.primary.publicKey;
    }
    const writes = plan.insert.length + plan.activate.length + plan.retire.length + Object.keys(patch).length;
    if (writes > 0) {
      await this.db.transaction().execute(async (tx) => {
        await writeKeys(tx, cache.id, plan);
        await updateCache(tx, cache.id, patch);
      });
    }
    if (patch.upstreams !== undefined) await deleteUpstreamLookups(this.db, cache.id);
    this.memo.delete(name);
    return this.get(name);
  }

  /**
   * A cache declared in the server config: created if missing, and its signing keys made exactly
   * `keys` (others retired). Safe on every start of every replica: an unchanged key set writes nothing.
   */
  async declare(name: string, s: CacheSettings, keys: SigningKey[] | undefined): Promise<Cache> {
    if (!(await this.find(name))) {
      try {
        return await this.create(name, s, keys);
      } catch (e) {
        // Another replica created it first: fall through and set the keys.
        if (!(e instanceof LoftError && e.kind === 'conflict' && (await findCacheByName(this.db, name)))) throw e;
        this.memo.delete(name);
      }
    }
    return keys?.length ? this.configure(name, {}, { replaceWith: keys }) : this.get(name);
  }

  /** Validated upstreams in their stored form; a local upstream must exist and hold the same store dir. */
  async #upstreamsJson(name: string, storeDir: string, settings: UpstreamSetting[], previousJson: string): Promise<string> {
    const stored = storedUpstreams(name, settings, previousJson);
    for (const u of stored.filter(isLocalUpstream)) {
      const base = await this.find(u.cache);
      if (!base) throw badRequest(`upstream cache '${u.cache}' does not exist`);
      if (base.store_dir !== storeDir) throw badRequest(`upstream cache '${u.cache}' holds paths of ${base.store_dir}, not ${storeDir}`);
    }
    return JSON.stringify(stored);
  }

  async destroy(name: string): Promise<void> {
    const cache = await this.get(name);
    await deleteCache(this.db, cache.id);
    await deleteCacheHistory(this.db, cache.id);
    this.memo.delete(name);
  }
}

/** A new key named after the newest one (`loft-main-1` → `loft-main-2`), so clients can trust both during rotation. */
function generatedKey(keys: CacheKeyRow[]): SigningKey {
  const newest = activeKeys(keys).at(-1) ?? keys.at(-1)!;
  return SigningKey.generate(nextKeyName(newest.name, new Set(keys.map((k) => k.name))));
}

async function writeKeys(db: Kysely<Database>, cacheId: number, plan: KeyPlan): Promise<void> {
  const now = Date.now();
  for (const key of plan.insert) {
    const inserted = await insertCacheKey(db, {
      cache_id: cacheId,
      name: key.name,
      secret_key: key.toString(),
      public_key: key.publicKey().toString(),
      state: 'active',
      created_at: now,
      retired_at: null,
    });
    // Another replica applying the same declared keys got there first: the same key is no conflict.
    if (!inserted && (await findCacheKey(db, cacheId, key.name))?.public_key !== key.publicKey().toString()) {
      throw conflict(`signing key '${key.name}' was added concurrently with another value: look at the cache and try again`);
    }
  }
  for (const id of plan.retire) await setCacheKeyState(db, id, 'retired', now);
  for (const id of plan.activate) await setCacheKeyState(db, id, 'active', now);
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
  const ur = s.upstreamRetentionSeconds;
  if (ur !== undefined && ur !== null && (!Number.isInteger(ur) || ur < 0)) {
    throw badRequest('upstream_retention_period must be a non-negative number of seconds or null');
  }
}
