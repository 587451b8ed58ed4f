// Roots and closure metadata from the local Nix: one `nix path-info --json` call
// gives every field a push needs.
import { spawn } from 'node:child_process';
import { realpath } from 'node:fs/promises';
import { parseStorePath } from '../../nix/store-path.ts';
import { UsageError } from '../errors.ts';
import type { PathInfo } from './types.ts';

/** Paths per `nix` invocation, so a long --stdin list never exceeds the argument limit. */
const ARGS_PER_CALL = 2000;

/**
 * Follows symlinks such as `./result` and returns the top-level store paths,
 * refusing anything outside `storeDir`.
 */
export async function resolveRoots(args: string[], storeDir: string): Promise<string[]> {
  // The store directory itself may be a symlink (e.g. /nix -> /mnt/nix).
  const realStore = await realpath(storeDir).catch(() => storeDir);
  const roots = new Set<string>();
  for (const arg of args) {
    let real: string;
    try {
      real = await realpath(arg);
    } catch (e) {
      throw new UsageError(`${arg}: ${(e as Error).message}`);
    }
    const inStore = [storeDir, realStore].find((dir) => real.startsWith(`${dir}/`));
    if (!inStore) throw new UsageError(`${arg}: ${real} is not in the store ${storeDir}`);
    // A file inside a store path (result/bin/foo) stands for the whole path.
    const baseName = real.slice(inStore.length + 1).split('/')[0];
    roots.add(parseStorePath(`${storeDir}/${baseName}`, storeDir).path);
  }
  return [...roots];
}

/** Metadata of `paths`, and of everything they reference when `closure` is set. */
export async function queryPathInfos(paths: string[], closure: boolean): Promise<PathInfo[]> {
  const byPath = new Map<string, PathInfo>();
  for (let i = 0; i < paths.length; i += ARGS_PER_CALL) {
    const args = ['--extra-experimental-features', 'nix-command', 'path-info', '--json'];
    if (closure) args.push('--recursive');
    const out = await capture('nix path-info', 'nix', [...args, ...paths.slice(i, i + ARGS_PER_CALL)]);
    for (const info of parsePathInfoJson(JSON.parse(out))) byPath.set(info.path, info);
  }
  return [...byPath.values()];
}

/** The paths of `paths` that are valid in the local store (a directory may exist before it is registered). */
export async function validPaths(paths: string[]): Promise<string[]> {
  const invalid = new Set<string>();
  for (let i = 0; i < paths.length; i += ARGS_PER_CALL) {
    const out = await capture('nix-store --check-validity', 'nix-store', ['--check-validity', '--print-invalid', ...paths.slice(i, i + ARGS_PER_CALL)]);
    for (const p of out.split('\n')) if (p) invalid.add(p);
  }
  return paths.filter((p) => !invalid.has(p));
}

/**
 * Nix up to 2.18 prints an array of objects with a `path` field; later versions
 * print an object keyed by path, with `null` for invalid paths.
 */
export function parsePathInfoJson(json: unknown): PathInfo[] {
  const entries: Array<[string, unknown]> = Array.isArray(json)
    ? json.map((o) => [(o as { path: string }).path, o])
    : Object.entries(json as Record<string, unknown>);
  return entries.map(([path, raw]) => {
    if (raw === null || typeof raw !== 'object') throw new Error(`${path}: not a valid store path`);
    const o = raw as Record<string, unknown>;
    if (typeof o.narHash !== 'string' || typeof o.narSize !== 'number' || !Array.isArray(o.references)) {
      throw new Error(`${path}: unexpected output of nix path-info --json`);
    }
    return {
      path,
      narHash: o.narHash,
      narSize: o.narSize,
      references: o.references as string[],
      deriver: typeof o.deriver === 'string' ? o.deriver : undefined,
      sigs: Array.isArray(o.signatures) ? (o.signatures as string[]) : [],
      ca: typeof o.ca === 'string' ? o.ca : undefined,
    };
  });
}

/** Runs a command and returns its stdout; a non-zero exit is an error carrying its stderr. */
function capture(what: string, cmd: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.on('error', (e) => reject(new Error(`${what}: ${e.message}`)));
    child.on('close', (code) => {
      if (code === 0) resolve(Buffer.concat(out).toString('utf8'));
      else reject(new Error(`${what} exited with code ${code}: ${oneLine(Buffer.concat(err))}`));
    });
  });
}

/** The last meaningful line of a tool's stderr, for one-line error reasons. */
export function oneLine(stderr: Buffer): string {
  const lines = stderr.toString('utf8').split('\n').map((l) => l.trim()).filter(Boolean);
  return lines.at(-1) ?? '(no error output)';
}
