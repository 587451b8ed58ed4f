// Cache administration and inspection calls of the JSON API (docs/api.md). Calls that change
// state are not retried; reads are, like every LoftClient call.
import type { CacheConfig, CacheSettingsBody, DeletePathsResult, GcReport, GcRunBody, Pin, PinBody, PinsResponse } from '../api/v1.ts';
import type { LoftClient } from './http.ts';

export type { CacheSettingsBody, DeletePathsResult, GcReport, Pin };

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

export function deletePaths(
  c: LoftClient,
  cache: string,
  hashes: string[],
  o: { force?: boolean; cascade?: boolean },
): Promise<DeletePathsResult> {
  const body: Record<string, unknown> = { cache, store_path_hashes: hashes };
  if (o.force) body.force = true;
  if (o.cascade) body.cascade = true;
  return c.request('POST', '/_api/v1/delete-paths', body, { retry: false });
}

/** One garbage-collection pass now: of one cache, or of every cache (admin). */
export function runGc(c: LoftClient, body: GcRunBody): Promise<GcReport> {
  return c.request('POST', '/_api/v1/gc', body, { retry: false });
}

export function setPin(c: LoftClient, cache: string, name: string, body: PinBody): Promise<Pin> {
  return c.request('PUT', `/_api/v1/caches/${enc(cache)}/pins/${enc(name)}`, body, { retry: false });
}

export async function listPins(c: LoftClient, cache: string): Promise<Pin[]> {
  return (await c.request<PinsResponse>('GET', `/_api/v1/caches/${enc(cache)}/pins`)).pins;
}

export async function removePin(c: LoftClient, cache: string, name: string): Promise<void> {
  await c.request('DELETE', `/_api/v1/caches/${enc(cache)}/pins/${enc(name)}`, undefined, { retry: false });
}
