// Cache administration and inspection calls of the JSON API (docs/api.md) that LoftClient
// (src/client/http.ts) does not have. LoftClient has no public request method and keeps its
// token private, so these take the endpoint and token directly. Errors are LoftApiError, as
// LoftClient's are. These calls change state, so they are never retried.
import { LoftApiError, type CacheConfig } from './http.ts';

export interface AdminTarget {
  endpoint: string;
  token?: string;
}

/** The POST/PATCH body of /_api/v1/cache-config/{cache}; absent fields are left alone. */
export interface CacheSettingsBody {
  is_public?: boolean;
  priority?: number;
  store_dir?: string;
  upstream_cache_key_names?: string[];
  /** Seconds; 0 = keep forever; null = the server default. */
  retention_period?: number | null;
  /** PATCH only. */
  regenerate_keypair?: boolean;
}

export interface CacheStats {
  cache: string;
  paths: number;
  nar_bytes: number;
  stored_bytes: number;
  chunks: number;
  chunk_bytes: number;
}

export interface PathInfo {
  store_path: string;
  nar_hash: string;
  nar_size: number;
  file_hash: string | null;
  file_size: number | null;
  references: string[];
  deriver: string | null;
  ca: string | null;
  sigs: string[];
  created_by: string | null;
  created_at: string;
  last_accessed_at: string;
  chunks: number;
  shared_bytes: number;
  dedup_ratio: number;
}

async function request<T>(t: AdminTarget, method: string, path: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = { accept: 'application/json', 'user-agent': 'loft-client' };
  if (t.token) headers.authorization = `Bearer ${t.token}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  const endpoint = t.endpoint.replace(/\/+$/, '');
  const what = `${method} ${path}`;
  let res: Response;
  try {
    res = await fetch(endpoint + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (e) {
    const cause = (e as Error & { cause?: { code?: string; message?: string } }).cause;
    throw new Error(`cannot reach ${endpoint}: ${cause?.code ?? cause?.message ?? (e as Error).message}`, { cause: e });
  }
  const text = await res.text();
  if (!res.ok) {
    let parsed: Record<string, unknown> | undefined;
    try {
      parsed = JSON.parse(text) as Record<string, unknown>;
    } catch {
      parsed = text ? { message: text.slice(0, 500) } : undefined;
    }
    const code = typeof parsed?.error === 'string' ? parsed.error : res.statusText || 'error';
    throw new LoftApiError(res.status, code, parsed, what);
  }
  return (text ? JSON.parse(text) : undefined) as T;
}

const enc = encodeURIComponent;

export async function listCaches(t: AdminTarget): Promise<CacheConfig[]> {
  return (await request<{ caches: CacheConfig[] }>(t, 'GET', '/_api/v1/caches')).caches;
}

export function getCacheConfig(t: AdminTarget, cache: string): Promise<CacheConfig> {
  return request(t, 'GET', `/_api/v1/cache-config/${enc(cache)}`);
}

export function createCache(t: AdminTarget, cache: string, settings: CacheSettingsBody): Promise<CacheConfig> {
  return request(t, 'POST', `/_api/v1/cache-config/${enc(cache)}`, settings);
}

export function configureCache(t: AdminTarget, cache: string, patch: CacheSettingsBody): Promise<CacheConfig> {
  return request(t, 'PATCH', `/_api/v1/cache-config/${enc(cache)}`, patch);
}

export async function destroyCache(t: AdminTarget, cache: string): Promise<void> {
  await request(t, 'DELETE', `/_api/v1/cache-config/${enc(cache)}`);
}

export function cacheStats(t: AdminTarget, cache: string): Promise<CacheStats> {
  return request(t, 'GET', `/_api/v1/caches/${enc(cache)}/stats`);
}

export function pathInfo(t: AdminTarget, cache: string, hash: string): Promise<PathInfo> {
  return request(t, 'GET', `/_api/v1/path-info/${enc(cache)}/${enc(hash)}`);
}

export async function deletePaths(t: AdminTarget, cache: string, hashes: string[], force: boolean): Promise<number> {
  const body: Record<string, unknown> = { cache, store_path_hashes: hashes };
  if (force) body.force = true;
  return (await request<{ deleted: number }>(t, 'POST', '/_api/v1/delete-paths', body)).deleted;
}
