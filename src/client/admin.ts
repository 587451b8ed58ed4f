// Cache administration and inspection calls of the JSON API (docs/api.md). Calls that change
// state are not retried; reads are, like every LoftClient call.
import type { CacheConfig, CacheSettingsBody } from '../api/v1.ts';
import type { LoftClient } from './http.ts';

export type { CacheSettingsBody };

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

const enc = encodeURIComponent;

export async function listCaches(c: LoftClient): Promise<CacheConfig[]> {
  return (await c.request<{ caches: CacheConfig[] }>('GET', '/_api/v1/caches')).caches;
}

export function createCache(c: LoftClient, cache: string, settings: CacheSettingsBody): Promise<CacheConfig> {
  return c.request('POST', `/_api/v1/cache-config/${enc(cache)}`, settings, { retry: false });
}

export function configureCache(c: LoftClient, cache: string, patch: CacheSettingsBody): Promise<CacheConfig> {
  return c.request('PATCH', `/_api/v1/cache-config/${enc(cache)}`, patch, { retry: false });
}

export async function destroyCache(c: LoftClient, cache: string): Promise<void> {
  await c.request('DELETE', `/_api/v1/cache-config/${enc(cache)}`, undefined, { retry: false });
}

export function cacheStats(c: LoftClient, cache: string): Promise<CacheStats> {
  return c.request('GET', `/_api/v1/caches/${enc(cache)}/stats`);
}

export function pathInfo(c: LoftClient, cache: string, hash: string): Promise<PathInfo> {
  return c.request('GET', `/_api/v1/path-info/${enc(cache)}/${enc(hash)}`);
}

export async function deletePaths(c: LoftClient, cache: string, hashes: string[], force: boolean): Promise<number> {
  const body: Record<string, unknown> = { cache, store_path_hashes: hashes };
  if (force) body.force = true;
  return (await c.request<{ deleted: number }>('POST', '/_api/v1/delete-paths', body, { retry: false })).deleted;
}
