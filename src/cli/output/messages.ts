// Everything the client commands print for humans, as functions returning strings (no I/O here).
import type { CacheConfig } from '../../client/http.ts';
import type { UpstreamConfig } from '../../api/v1.ts';
import type { CacheStats, GcReport, PathInfo, Pin } from '../../client/admin.ts';

export function humanBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${n} B` : `${v.toFixed(v < 10 ? 2 : 1)} ${units[i]}`;
}

const PERIOD_UNITS: Array<[string, number]> = [
  ['y', 365 * 86400],
  ['w', 7 * 86400],
  ['d', 86400],
  ['h', 3600],
  ['m', 60],
  ['s', 1],
];

/** Seconds as the largest exact unit (`30d`, `36h`); 0 is "forever", null the server default. */
export function formatPeriod(seconds: number | null): string {
  if (seconds === null) return 'server default';
  if (seconds === 0) return 'keep forever';
  for (const [u, s] of PERIOD_UNITS) if (seconds % s === 0) return `${seconds / s}${u}`;
  return `${seconds}s`;
}

function table(rows: string[][]): string {
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  return rows.map((r) => r.map((cell, c) => (c === r.length - 1 ? cell : cell.padEnd(widths[c]))).join('  ')).join('\n');
}

function fields(pairs: Array<[string, string]>): string {
  const w = Math.max(...pairs.map(([k]) => k.length)) + 1;
  return pairs.map(([k, v]) => `${`${k}:`.padEnd(w)} ${v}`).join('\n');
}

export function loginDone(name: string, endpoint: string, caches: CacheConfig[], isDefault: boolean, configFile: string): string {
  const seen = caches.length === 0 ? 'no caches visible to this token yet' : `caches visible: ${caches.map((c) => c.name).join(', ')}`;
  return [
    `✓ logged in to '${name}' (${endpoint})${isDefault ? ', the default server' : ''}`,
    `  ${seen}`,
    `  saved in ${configFile}`,
  ].join('\n');
}

export function cacheInfo(c: CacheConfig, stats: CacheStats | undefined): string {
  const pairs: Array<[string, string]> = [
    ['Cache', c.name],
    ['Visibility', c.is_public ? 'public' : 'private'],
    ['URL', c.url],
    ['Public key', c.public_key],
    ...c.signing_keys.map((k): [string, string] => [
      'Signing key',
      `${k.public_key} (${k.state === 'active' ? `active since ${k.created_at}` : `retired ${k.retired_at}`})`,
    ]),
    ['Priority', String(c.priority)],
    ['Store dir', c.store_dir],
    ['Upstream keys', c.upstream_cache_key_names.length ? c.upstream_cache_key_names.join(', ') : '(none)'],
    ['Retention', formatPeriod(c.retention_period)],
    ['Upstreams', upstreamList(c.upstreams)],
    ['Upstream retention', formatPeriod(c.upstream_retention_period)],
    ['Created', c.created_at],
  ];
  if (stats) {
    const saved = stats.nar_bytes > 0 ? ` (${((1 - stats.stored_bytes / stats.nar_bytes) * 100).toFixed(1)}% saved)` : '';
    pairs.push(
      ['Paths', String(stats.paths)],
      ['NAR bytes', humanBytes(stats.nar_bytes)],
      ['Stored bytes', `${humanBytes(stats.stored_bytes)}${saved}`],
      ['Chunks', `${stats.chunks} (${humanBytes(stats.chunk_bytes)} uncompressed)`],
    );
  }
  return fields(pairs);
}

function upstreamList(upstreams: UpstreamConfig[]): string {
  if (upstreams.length === 0) return '(none: pull-through is off)';
  return upstreams
    .map((u, i) => {
      const notes = 'cache' in u ? [`cache '${u.cache}' on this server`] : [u.public_keys.map((k) => k.split(':')[0]).join(', ')];
      if (u.priority !== undefined) notes.push(`priority ${u.priority}`);
      if ('url' in u && u.has_credentials) notes.push('with credentials');
      return `\n  ${i + 1}. ${'cache' in u ? `cache:${u.cache}` : u.url} (${notes.join('; ')})`;
    })
    .join('');
}

export function cacheCreated(c: CacheConfig): string {
  return `✓ created ${c.is_public ? 'public' : 'private'} cache '${c.name}' at ${c.url}\n  public key: ${c.public_key}`;
}

const KEY_FIELDS = ['signing_key', 'add_signing_key', 'generate_signing_key', 'retire_signing_key', 'regenerate_keypair'];

export function cacheConfigured(c: CacheConfig, changed: string[]): string {
  const done = `✓ configured cache '${c.name}' (${changed.join(', ')})`;
  if (!changed.some((f) => KEY_FIELDS.includes(f))) return done;
  return [done, ...c.signing_keys.map((k) => `  ${k.state.padEnd(7)} ${k.public_key}`)].join('\n');
}

export function cacheDestroyed(name: string): string {
  return `✓ destroyed cache '${name}'`;
}

export function cacheList(caches: CacheConfig[]): string {
  if (caches.length === 0) return 'no caches visible';
  const rows = [['NAME', 'VISIBILITY', 'PRIORITY', 'URL']];
  for (const c of caches) rows.push([c.name, c.is_public ? 'public' : 'private', String(c.priority), c.url]);
  return table(rows);
}

export function destroyPrompt(cache: string, server: string): string {
  return `This destroys cache '${cache}' on '${server}' and every path in it. Type the cache name to confirm: `;
}

export function pathInfoText(p: PathInfo): string {
  const list = (xs: string[]) => (xs.length ? xs.map((x) => `\n  ${x}`).join('') : ' (none)');
  const pairs: Array<[string, string]> = [
    ['Store path', p.store_path],
    ['NarHash', p.nar_hash],
    ['NarSize', `${p.nar_size} (${humanBytes(p.nar_size)})`],
    ['File size', p.file_size === null ? '-' : `${p.file_size} (${humanBytes(p.file_size)})`],
    ['Deriver', p.deriver ?? '-'],
    ['CA', p.ca ?? '-'],
    ['Chunks', String(p.chunks)],
    ['Dedup ratio', `${(p.dedup_ratio * 100).toFixed(1)}% (${humanBytes(p.shared_bytes)} shared with other NARs)`],
    ['Uploaded by', `${p.created_by ?? '-'} at ${p.created_at}`],
    ['Last access', p.last_accessed_at],
  ];
  return `${fields(pairs)}\nReferences:${list(p.references)}\nSigs:${list(p.sigs)}`;
}

export function pathsDeleted(n: number, cache: string, cascaded: string[] = []): string {
  const done = `✓ deleted ${n} path${n === 1 ? '' : 's'} from '${cache}'`;
  return cascaded.length === 0 ? done : `${done}, with the ${cascaded.length} that referred to them:${cascaded.map((p) => `\n  ${p}`).join('')}`;
}

/** What a garbage-collection pass removed (or would: a dry run). */
export function gcDone(r: GcReport): string {
  const lines: string[] = [];
  for (const c of r.caches) {
    if (c.paths === 0) continue;
    lines.push(`${c.cache}: ${c.paths} path${c.paths === 1 ? '' : 's'} (${humanBytes(c.nar_bytes)} of NARs)`);
    for (const p of c.store_paths) lines.push(`  ${p}`);
    if (c.paths > c.store_paths.length) lines.push(`  … and ${c.paths - c.store_paths.length} more`);
  }
  if (r.dry_run) {
    lines.push(`dry run: ${r.paths} path${r.paths === 1 ? '' : 's'} would go, freeing up to ${humanBytes(r.nar_bytes)} of NARs; nothing was changed`);
  } else {
    lines.push(
      `✓ ${r.paths} path${r.paths === 1 ? '' : 's'}, ${r.nars} NAR${r.nars === 1 ? '' : 's'} and ${r.chunks} chunk${r.chunks === 1 ? '' : 's'} ` +
        `collected; ${humanBytes(r.bytes_freed)} freed in ${(r.duration_ms / 1000).toFixed(1)} s`,
    );
  }
  return lines.join('\n');
}

export function pinList(cache: string, pins: Pin[]): string {
  if (pins.length === 0) return `no pins in '${cache}'`;
  const keep = (p: Pin) =>
    [p.keep_revisions !== null ? `last ${p.keep_revisions}` : '', p.keep_days !== null ? `${p.keep_days}d` : ''].filter(Boolean).join(' or ') ||
    'forever';
  const rows = [['NAME', 'STORE PATH', 'KEEPS', 'REVISIONS']];
  for (const p of pins) rows.push([p.name, p.store_path, keep(p), String(p.revisions.length)]);
  return table(rows);
}

export function pinSet(cache: string, p: Pin): string {
  return `✓ pinned ${p.store_path} as '${p.name}' in '${cache}' (${p.revisions.length} revision${p.revisions.length === 1 ? '' : 's'} kept)`;
}

export function pinRemoved(cache: string, name: string): string {
  return `✓ removed pin '${name}' from '${cache}'; its paths are collected once unused past the retention period`;
}

/** One file's planned change, as `loft use` reports it. */
export interface FileChangeReport {
  file: string;
  created: boolean;
  removed: string[];
  added: string[];
}

export function fileChanges(changes: FileChangeReport[], dryRun: boolean): string {
  const out: string[] = [];
  const real = changes.filter((c) => c.added.length || c.removed.length);
  for (const c of real) {
    out.push(`${dryRun ? 'would change' : 'changed'} ${c.file}${c.created ? ' (new file)' : ''}:`);
    for (const l of c.removed) out.push(`  - ${l}`);
    for (const l of c.added) out.push(`  + ${l}`);
  }
  if (real.length === 0) out.push('nothing to change: already configured');
  return out.join('\n');
}

export function useDone(cache: string, url: string, dryRun: boolean): string {
  return dryRun ? `(dry run: nothing written)` : `✓ configured Nix to use '${cache}' (${url})`;
}

export const TRUST_WARNING =
  'note: on a multi-user install the nix-daemon ignores substituters from a non-trusted user\'s nix.conf unless they are in its `trusted-substituters` (or you are in `trusted-users`).';
