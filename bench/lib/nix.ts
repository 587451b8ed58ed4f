// `nix copy` to a file:// cache and to a Loft cache, pinned to the client core.
import { randomInt } from 'node:crypto';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { CLIENT_CORE, DIST, nixEnv, pinned, run, timed } from './common.ts';
import type { LoftServer } from './servers.ts';

const NIX32 = '0123456789abcdfghijklmnpqrsvwxyz';

export function randomPathHash(): string {
  let s = '';
  for (let i = 0; i < 32; i++) s += NIX32[randomInt(32)];
  return s;
}

export function hashPart(storePath: string): string {
  return path.basename(storePath).slice(0, 32);
}

/** `nix copy --to file://DIR?compression=C PATHS`; returns the wall time. */
export async function nixCopyToFile(dir: string, paths: string[], work: string, compression = 'zstd'): Promise<number> {
  const [cmd, args] = pinned(CLIENT_CORE, 'nix', ['copy', '--to', `file://${dir}?compression=${compression}`, ...paths]);
  return (await timed(() => run(cmd, args, { env: nixEnv(work) }))).ms;
}

/** `nix copy --to http://LOFT/CACHE?compression=zstd PATHS` with the admin token in a netrc; returns the wall time. */
export async function nixCopyToLoft(loft: LoftServer, cache: string, paths: string[], work: string): Promise<number> {
  const netrc = path.join(work, 'netrc');
  await writeFile(netrc, `machine 127.0.0.1\nlogin loft\npassword ${loft.token}\n`, { mode: 0o600 });
  const env = nixEnv(work, [`netrc-file = ${netrc}`]);
  const [cmd, args] = pinned(CLIENT_CORE, 'nix', ['copy', '--to', `${loft.url}/${cache}?compression=zstd`, ...paths]);
  return (await timed(() => run(cmd, args, { env }))).ms;
}

/** `loft push CACHE PATHS --json` (the built CLI) with LOFT_SERVER/LOFT_TOKEN; returns its summary and wall time. */
export async function loftPush(
  loft: LoftServer,
  cache: string,
  paths: string[],
): Promise<{ ms: number; summary: { bytes_sent: number; nar_bytes: number; pushed: number; failed: unknown[] } }> {
  const [cmd, args] = pinned(CLIENT_CORE, process.execPath, [
    path.join(DIST, 'src/bin/loft.js'),
    'push',
    cache,
    ...paths,
    '--json',
  ]);
  const env = { ...process.env, LOFT_SERVER: loft.url, LOFT_TOKEN: loft.token, NO_COLOR: '1' };
  const { ms, value } = await timed(() => run(cmd, args, { env }));
  const line = value.stdout.trim().split('\n').filter((l) => l.startsWith('{')).pop();
  if (!line) throw new Error(`loft push printed no JSON summary:\n${value.stdout}\n${value.stderr}`);
  const summary = JSON.parse(line) as { bytes_sent: number; nar_bytes: number; pushed: number; failed: unknown[] };
  if (summary.failed.length > 0) throw new Error(`loft push failed: ${JSON.stringify(summary.failed)}`);
  return { ms, summary };
}

/** The narinfos of a file:// cache, parsed into field maps, by store path hash. */
export async function readFileCacheNarinfos(dir: string): Promise<Map<string, Record<string, string>>> {
  const out = new Map<string, Record<string, string>>();
  for (const name of await readdir(dir)) {
    if (!name.endsWith('.narinfo')) continue;
    const fields: Record<string, string> = {};
    for (const line of (await readFile(path.join(dir, name), 'utf8')).split('\n')) {
      const i = line.indexOf(': ');
      if (i > 0) fields[line.slice(0, i)] = line.slice(i + 2);
    }
    out.set(name.slice(0, 32), fields);
  }
  return out;
}
