import type { UpstreamConfig, UpstreamSetting } from '../api/v1.ts';
import type { CacheRow } from '../db/schema.ts';
import { PublicKey } from '../nix/signing.ts';
import { isValidCacheName } from '../token/patterns.ts';
import { badRequest } from './errors.ts';

/** An upstream as kept in `caches.upstreams`; `authorization` (a header value) never leaves the server. */
export type StoredUpstream = StoredHttpUpstream | StoredLocalUpstream;
export interface StoredHttpUpstream {
  url: string;
  public_keys: string[];
  priority?: number;
  authorization?: string;
}
export interface StoredLocalUpstream {
  cache: string;
  priority?: number;
}

const MAX_UPSTREAMS = 16;
/** Nix's default priority of a binary cache; an upstream without one sorts like it. */
const DEFAULT_PRIORITY = 50;

export const isLocalUpstream = (u: StoredUpstream): u is StoredLocalUpstream => 'cache' in u;

/** The name an upstream goes by in logs, metrics and the objects it brought: its URL or `cache:NAME`. */
export function upstreamLabel(u: StoredUpstream): string {
  return isLocalUpstream(u) ? `cache:${u.cache}` : u.url;
}

const parsed = new Map<string, StoredUpstream[]>();

/** The cache's upstreams in the order they are asked (ascending priority, then list order). */
export function upstreamsOf(cache: CacheRow): StoredUpstream[] {
  let list = parsed.get(cache.upstreams);
  if (!list) {
    const all = JSON.parse(cache.upstreams) as StoredUpstream[];
    list = all
      .map((u, i) => ({ u, i }))
      .sort((a, b) => (a.u.priority ?? DEFAULT_PRIORITY) - (b.u.priority ?? DEFAULT_PRIORITY) || a.i - b.i)
      .map(({ u }) => u);
    if (parsed.size > 1000) parsed.clear();
    parsed.set(cache.upstreams, list);
  }
  return list;
}

/** The API view: the stored list as configured, credentials replaced by a flag. */
export function upstreamsForApi(json: string): UpstreamConfig[] {
  return (JSON.parse(json) as StoredUpstream[]).map((u) => {
    if (isLocalUpstream(u)) return u;
    const { authorization, ...rest } = u;
    return { ...rest, has_credentials: authorization !== undefined };
  });
}

/**
 * Checks the upstreams given through the API and turns them into their stored form. An HTTP
 * upstream whose URL was already configured keeps its credentials unless the entry sets new ones
 * (or clears them with null), so a GET-edit-PATCH round trip does not lose them.
 */
export function storedUpstreams(cacheName: string, settings: UpstreamSetting[], previousJson: string): StoredUpstream[] {
  if (!Array.isArray(settings)) throw badRequest('upstreams must be an array');
  if (settings.length > MAX_UPSTREAMS) throw badRequest(`at most ${MAX_UPSTREAMS} upstreams can be configured`);
  const previous = new Map(
    (JSON.parse(previousJson) as StoredUpstream[]).filter((u) => !isLocalUpstream(u)).map((u) => [(u as StoredHttpUpstream).url, u as StoredHttpUpstream]),
  );
  const seen = new Set<string>();
  return settings.map((s, i) => {
    const where = `upstreams[${i}]`;
    if (s.priority !== undefined && (!Number.isInteger(s.priority) || s.priority < 0 || s.priority > 10000)) {
      throw badRequest(`${where}.priority must be an integer between 0 and 10000`);
    }
    const priority = s.priority === undefined ? {} : { priority: s.priority };
    let stored: StoredUpstream;
    if ('cache' in s) {
      if (!isValidCacheName(s.cache)) throw badRequest(`${where}.cache: invalid cache name '${s.cache}'`);
      if (s.cache === cacheName) throw badRequest(`${where}: a cache cannot be its own upstream`);
      stored = { cache: s.cache, ...priority };
    } else {
      stored = { url: checkUrl(where, s.url), public_keys: checkKeys(where, s.public_keys), ...priority };
      const authorization = authorizationOf(where, s) ?? (hasCredentialFields(s) ? undefined : previous.get(stored.url)?.authorization);
      if (authorization !== undefined) stored.authorization = authorization;
    }
    const label = upstreamLabel(stored);
    if (seen.has(label)) throw badRequest(`${where}: ${label} is listed twice`);
    seen.add(label);
    return stored;
  });
}

function checkUrl(where: string, url: unknown): string {
  if (typeof url !== 'string') throw badRequest(`${where}: give either "url" (an HTTP binary cache) or "cache" (a cache on this server)`);
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw badRequest(`${where}.url: '${url}' is not a URL`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw badRequest(`${where}.url must be http:// or https://`);
  if (u.username || u.password) throw badRequest(`${where}.url must not contain credentials: give basic_auth or bearer_token`);
  if (u.search || u.hash) throw badRequest(`${where}.url must not have a query or fragment`);
  return u.toString().replace(/\/+$/, '');
}

function checkKeys(where: string, keys: unknown): string[] {
  if (!Array.isArray(keys) || keys.length === 0) {
    throw badRequest(`${where}.public_keys must list at least one key 'name:base64' (e.g. cache.nixos.org-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY=)`);
  }
  return keys.map((k) => {
    try {
      return PublicKey.parse(String(k)).toString();
    } catch (e) {
      throw badRequest(`${where}.public_keys: ${(e as Error).message}`);
    }
  });
}

type HttpSetting = Extract<UpstreamSetting, { url: string }>;

const hasCredentialFields = (s: HttpSetting) => s.bearer_token !== undefined || s.basic_auth !== undefined;

function authorizationOf(where: string, s: HttpSetting): string | undefined {
  if (s.bearer_token && s.basic_auth) throw badRequest(`${where}: give either bearer_token or basic_auth, not both`);
  if (s.bearer_token) {
    if (/[\s]/.test(s.bearer_token)) throw badRequest(`${where}.bearer_token must not contain whitespace`);
    return `Bearer ${s.bearer_token}`;
  }
  if (s.basic_auth) {
    if (!s.basic_auth.includes(':')) throw badRequest(`${where}.basic_auth must be 'user:password'`);
    return `Basic ${Buffer.from(s.basic_auth, 'utf8').toString('base64')}`;
  }
  return undefined;
}
