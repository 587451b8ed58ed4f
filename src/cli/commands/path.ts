// `loft path info [SERVER:]CACHE PATH` and `loft path delete [SERVER:]CACHE PATH… [--force]`.
import { realpathSync } from 'node:fs';
import type { CliContext } from '../context.ts';
import { deletePaths, pathInfo } from '../../client/admin.ts';
import { UsageError } from '../errors.ts';
import { NIX_BASE32_ALPHABET } from '../../nix/base32.ts';
import { isValidStorePathHash } from '../../nix/store-path.ts';
import { pathInfoText, pathsDeleted } from '../output/messages.ts';

const BASE_NAME = new RegExp(`^([${NIX_BASE32_ALPHABET}]{32})(-[^/]+)?$`);

/**
 * The store path hash of a full store path (or a file inside one), a base name `HASH-name`, a bare
 * hash, or a local symlink to a store path such as `./result`.
 */
export function storePathHash(arg: string): string {
  if (isValidStorePathHash(arg)) return arg;
  const found = (p: string) => {
    for (const part of p.split('/')) {
      const m = BASE_NAME.exec(part);
      if (m) return m[1];
    }
    return undefined;
  };
  const direct = found(arg);
  if (direct) return direct;
  try {
    const resolved = found(realpathSync(arg));
    if (resolved) return resolved;
  } catch {
    // not a local file: fall through
  }
  throw new UsageError(`'${arg}' is not a store path, a store path base name or a 32-character store path hash`);
}

export async function pathInfoCommand(ref: string, storePath: string, ctx: CliContext): Promise<void> {
  const hash = storePathHash(storePath);
  const t = await ctx.resolveCache(ref);
  const info = await pathInfo(t.client, t.cache, hash);
  if (ctx.json) ctx.stdout.write(`${JSON.stringify(info, null, 2)}\n`);
  else ctx.stdout.write(`${pathInfoText(info)}\n`);
}

export interface PathDeleteOptions {
  force?: boolean;
  cascade?: boolean;
}

export async function pathDeleteCommand(ref: string, paths: string[], opts: PathDeleteOptions, ctx: CliContext): Promise<void> {
  if (opts.force && opts.cascade) throw new UsageError('give either --force or --cascade, not both');
  const hashes = [...new Set(paths.map(storePathHash))];
  const t = await ctx.resolveCache(ref);
  const result = await deletePaths(t.client, t.cache, hashes, { force: opts.force, cascade: opts.cascade });
  if (ctx.json) ctx.stdout.write(`${JSON.stringify({ cache: t.cache, ...result }, null, 2)}\n`);
  else ctx.stdout.write(`${pathsDeleted(result.deleted, t.cache, result.cascaded)}\n`);
}
