import { NixFormatError } from './errors.ts';

export interface CacheInfo {
  storeDir: string;
  wantMassQuery?: boolean;
  priority?: number;
}

export function formatCacheInfo(opts: { storeDir: string; wantMassQuery: boolean; priority: number }): string {
  if (!Number.isSafeInteger(opts.priority) || opts.priority < 0) {
    throw new NixFormatError(`invalid cache priority ${opts.priority}: must be a non-negative integer`);
  }
  return `StoreDir: ${opts.storeDir}\nWantMassQuery: ${opts.wantMassQuery ? 1 : 0}\nPriority: ${opts.priority}\n`;
}

/** Parses /nix-cache-info; unknown keys are ignored, StoreDir is required since a mismatch makes the cache unusable. */
export function parseCacheInfo(text: string): CacheInfo {
  let storeDir: string | undefined;
  let wantMassQuery: boolean | undefined;
  let priority: number | undefined;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '') continue;
    const colon = line.indexOf(':');
    if (colon <= 0) throw new NixFormatError(`invalid nix-cache-info line '${line}'`);
    const key = line.slice(0, colon);
    const value = line.slice(colon + 1).trim();
    if (key === 'StoreDir') {
      if (!value.startsWith('/')) throw new NixFormatError(`invalid nix-cache-info StoreDir '${value}': not absolute`);
      storeDir = value;
    } else if (key === 'WantMassQuery') {
      if (value !== '0' && value !== '1') {
        throw new NixFormatError(`invalid nix-cache-info WantMassQuery '${value}': expected 0 or 1`);
      }
      wantMassQuery = value === '1';
    } else if (key === 'Priority') {
      if (!/^[0-9]+$/.test(value) || !Number.isSafeInteger(Number(value))) {
        throw new NixFormatError(`invalid nix-cache-info Priority '${value}': expected a non-negative integer`);
      }
      priority = Number(value);
    }
  }
  if (storeDir === undefined) throw new NixFormatError('invalid nix-cache-info: missing StoreDir');
  const info: CacheInfo = { storeDir };
  if (wantMassQuery !== undefined) info.wantMassQuery = wantMassQuery;
  if (priority !== undefined) info.priority = priority;
  return info;
}
