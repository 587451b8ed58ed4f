import type { Kysely } from 'kysely';
import { SigningKey } from '../nix/signing.ts';
import { DEFAULT_STORE_DIR } from '../nix/store-path.ts';
import { isValidCacheName } from '../token/patterns.ts';
import type { CacheRow, Database } from '../db/schema.ts';
import { deleteCache, findCacheByName, insertCache, listCaches, updateCache, type CachePatch } from '../db/repos/caches.ts';
import { badRequest, conflict, notFound } from './errors.ts';
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

export function invalidCacheNameMessage(name: string): string {
  return `invalid cache name '${name}': use 1-50 characters [A-Za-z0-9._+-], starting with a letter or digit`;
}

/**
 * Cache lookups are on every request; rows are memoised briefly so a replica
 * sees another replica's configuration change within CACHE_TTL_MS.
 */
export class CacheService {
  private memo = new Map<string, { row: CacheRow | undefined; at: number }>();

  constructor(
    private readonly db: Kysely<Database>,
    private readonly keyNamePrefix: string,
  ) {}

  async find(name: string): Promise<CacheRow | undefined> {
    const hit = this.memo.get(name);
    const now = Date.now();
    if (hit && now - hit.at < CACHE_TTL_MS) return hit.row;
    const row = await findCacheByName(this.db, name);
    this.memo.set(name, { row, at: now });
    return row;
  }

  async get(name: string): Promise<CacheRow> {
    const row = await this.find(name);
    if (!row) throw notFound(`no such cache '${name}'`);
    return row;
  }

  list(): Promise<CacheRow[]> {
    return listCaches(this.db);
  }

  async create(name: string, s: CacheSettings): Promise<CacheRow> {
    if (!isValidCacheName(name)) throw badRequest(invalidCacheNameMessage(name));
    validateSettings(s);
    const storeDir = s.storeDir ?? DEFAULT_STORE_DIR;
    const upstreams = await this.#upstreamsJson(name, storeDir, s.upstreams ?? [], '[]');
    const key = SigningKey.generate(`${this.keyNamePrefix}-${name}-1`);
    const row = await insertCache(this.db, {
      name,
      signing_key: key.toString(),
      public_key: key.publicKey().toString(),
      is_public: s.isPublic ? 1 : 0,
      priority: s.priority ?? 41,
      store_dir: storeDir,
      upstream_key_names: JSON.stringify(s.upstreamKeyNames ?? ['cache.nixos.org-1']),
      retention_seconds: s.retentionSeconds ?? null,
      upstreams,
      upstream_retention_seconds: s.upstreamRetentionSeconds ?? null,
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
    if (s.upstreams !== undefined) {
      patch.upstreams = await this.#upstreamsJson(name, s.storeDir ?? cache.store_dir, s.upstreams, cache.upstreams);
    }
    if (s.upstreamRetentionSeconds !== undefined) patch.upstream_retention_seconds = s.upstreamRetentionSeconds;
    if (s.regenerateKey) {
      const key = SigningKey.generate(nextKeyName(SigningKey.parse(cache.signing_key).name));
      patch.signing_key = key.toString();
      patch.public_key = key.publicKey().toString();
    }
    if (Object.keys(patch).length === 0) throw badRequest('no setting to change was given');
    await updateCache(this.db, cache.id, patch);
    if (patch.upstreams !== undefined) await deleteUpstreamLookups(this.db, cache.id);
    this.memo.delete(name);
    return this.get(name);
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
  if (s.storeDir !== undefined && !/^\/[^\0]*[^/]$/.test(s.storeDir)) {
    throw badRequest('store_dir must be an absolute path without a trailing slash');
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
