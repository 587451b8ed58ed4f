// `loft cache create|configure|info|list|destroy`.
import { readFile } from 'node:fs/promises';
import { createInterface } from 'node:readline/promises';
import type { CliContext } from '../context.ts';
import { LoftApiError } from '../../client/http.ts';
import {
  cacheStats,
  configureCache,
  createCache,
  destroyCache,
  listCaches,
  type CacheSettingsBody,
  type CacheStats,
} from '../../client/admin.ts';
import type { UpstreamSetting } from '../../api/v1.ts';
import { CliError, InterruptedError, UsageError } from '../errors.ts';
import { cacheConfigured, cacheCreated, cacheDestroyed, cacheInfo, cacheList, destroyPrompt } from '../output/messages.ts';

/** The settings flags of `cache create` and `cache configure`, as commander parses them. */
export interface CacheFlags {
  public?: boolean;
  private?: boolean;
  priority?: string;
  upstreamKey?: string[];
  /** false with --no-upstream-keys. */
  upstreamKeys?: boolean;
  retention?: string;
  storeDir?: string;
  regenerateKey?: boolean;
  resetRetention?: boolean;
  signingKeyFile?: string;
  addSigningKeyFile?: string;
  addSigningKey?: boolean;
  retireSigningKey?: string;
  upstream?: string[];
  /** false with --no-upstreams. */
  upstreams?: boolean;
  upstreamRetention?: string;
  resetUpstreamRetention?: boolean;
}

const UNIT_SECONDS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86400, w: 7 * 86400, y: 365 * 86400 };

/** `30d`, `12h`, `2w`, `1y`, `90m`, `3600s` or plain seconds; `0`, `forever` or `never` = keep forever. */
export function parsePeriod(s: string): number {
  if (s === 'forever' || s === 'never') return 0;
  const m = /^(\d+)\s*([smhdwy]?)$/.exec(s.trim());
  if (!m) throw new UsageError(`invalid retention period '${s}': use e.g. 30d, 12h, 2w, 1y, a number of seconds, or 'forever'`);
  const v = Number(m[1]) * UNIT_SECONDS[m[2] || 's'];
  if (!Number.isSafeInteger(v)) throw new UsageError(`retention period '${s}' is too large`);
  return v;
}

function parsePriority(s: string): number {
  if (!/^\d+$/.test(s) || Number(s) > 10000) throw new UsageError(`invalid priority '${s}': use an integer from 0 to 10000 (lower is preferred)`);
  return Number(s);
}

/** Only the flags the user gave, as the API body: PATCH changes exactly these. */
export function settingsFromFlags(f: CacheFlags): CacheSettingsBody {
  if (f.public && f.private) throw new UsageError('give either --public or --private, not both');
  if (f.upstreamKey?.length && f.upstreamKeys === false) throw new UsageError('give either --upstream-key or --no-upstream-keys, not both');
  if (f.retention !== undefined && f.resetRetention) throw new UsageError('give either --retention or --reset-retention, not both');
  const b: CacheSettingsBody = {};
  if (f.public) b.is_public = true;
  if (f.private) b.is_public = false;
  if (f.priority !== undefined) b.priority = parsePriority(f.priority);
  if (f.upstreamKey?.length) b.upstream_cache_key_names = f.upstreamKey;
  if (f.upstreamKeys === false) b.upstream_cache_key_names = [];
  if (f.retention !== undefined) b.retention_period = parsePeriod(f.retention);
  if (f.resetRetention) b.retention_period = null;
  if (f.storeDir !== undefined) b.store_dir = f.storeDir;
  if (f.regenerateKey) b.regenerate_keypair = true;
  if (f.addSigningKey) b.generate_signing_key = true;
  if (f.retireSigningKey !== undefined) b.retire_signing_key = f.retireSigningKey;
  if (f.upstream?.length && f.upstreams === false) throw new UsageError('give either --upstream or --no-upstreams, not both');
  if (f.upstream?.length) b.upstreams = f.upstream.map(parseUpstream);
  if (f.upstreams === false) b.upstreams = [];
  if (f.upstreamRetention !== undefined && f.resetUpstreamRetention) {
    throw new UsageError('give either --upstream-retention or --reset-upstream-retention, not both');
  }
  if (f.upstreamRetention !== undefined) b.upstream_retention_period = parsePeriod(f.upstreamRetention);
  if (f.resetUpstreamRetention) b.upstream_retention_period = null;
  return b;
}

/** The secret key files of the flags, read here: the server takes the keys, write-only, in the body. */
export async function withKeyFiles(b: CacheSettingsBody, f: CacheFlags): Promise<CacheSettingsBody> {
  const read = async (file: string) => {
    try {
      return await readFile(file, 'utf8');
    } catch (e) {
      throw new UsageError(`cannot read signing key file ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
  };
  const out = { ...b };
  if (f.signingKeyFile !== undefined) out.signing_key = await read(f.signingKeyFile);
  if (f.addSigningKeyFile !== undefined) out.add_signing_key = await read(f.addSigningKeyFile);
  return out;
}

/** `URL KEY [KEY…]` or `cache:NAME` (the server checks the URL and keys). */
export function parseUpstream(spec: string): UpstreamSetting {
  const [first, ...keys] = spec.trim().split(/\s+/);
  if (first.startsWith('cache:') && keys.length === 0) return { cache: first.slice('cache:'.length) };
  if (!/^https?:\/\//.test(first) || keys.length === 0) {
    throw new UsageError(
      `invalid upstream '${spec}': use 'URL KEY [KEY…]' (e.g. 'https://cache.nixos.org cache.nixos.org-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY=') or 'cache:NAME'`,
    );
  }
  return { url: first, public_keys: keys };
}

const printJson = (ctx: CliContext, v: unknown) => ctx.stdout.write(`${JSON.stringify(v, null, 2)}\n`);

export async function cacheCreateCommand(ref: string, flags: CacheFlags, ctx: CliContext): Promise<void> {
  const t = await ctx.resolveCache(ref);
  const created = await createCache(t.client, t.cache, await withKeyFiles(settingsFromFlags(flags), flags));
  if (ctx.json) printJson(ctx, created);
  else ctx.stdout.write(`${cacheCreated(created)}\n`);
}

export async function cacheConfigureCommand(ref: string, flags: CacheFlags, ctx: CliContext): Promise<void> {
  const body = await withKeyFiles(settingsFromFlags(flags), flags);
  const changed = Object.keys(body);
  if (changed.length === 0) {
    throw new UsageError('nothing to change: give at least one of --public, --private, --priority, --upstream-key, --no-upstream-keys, --retention, --reset-retention, --store-dir, --regenerate-key, --signing-key-file, --add-signing-key-file, --add-signing-key, --retire-signing-key, --upstream, --no-upstreams, --upstream-retention, --reset-upstream-retention');
  }
  const t = await ctx.resolveCache(ref);
  const updated = await configureCache(t.client, t.cache, body);
  if (ctx.json) printJson(ctx, updated);
  else ctx.stdout.write(`${cacheConfigured(updated, changed)}\n`);
}

export async function cacheInfoCommand(ref: string, ctx: CliContext): Promise<void> {
  const t = await ctx.resolveCache(ref);
  const config = await t.client.cacheConfig(t.cache);
  // Statistics are extra: an older server without the route must not fail the command.
  let stats: CacheStats | undefined;
  try {
    stats = await cacheStats(t.client, t.cache);
  } catch (e) {
    if (!(e instanceof LoftApiError) || e.status >= 500) throw e;
  }
  if (ctx.json) printJson(ctx, { ...config, stats: stats ?? null });
  else ctx.stdout.write(`${cacheInfo(config, stats)}\n`);
}

export async function cacheListCommand(server: string | undefined, ctx: CliContext): Promise<void> {
  const t = await ctx.resolveServer(server);
  const caches = await listCaches(t.client);
  if (ctx.json) printJson(ctx, caches);
  else ctx.stdout.write(`${cacheList(caches)}\n`);
}

export interface DestroyOptions {
  yes?: boolean;
}

export async function cacheDestroyCommand(ref: string, opts: DestroyOptions, ctx: CliContext, stdin: NodeJS.ReadStream = process.stdin): Promise<void> {
  const t = await ctx.resolveCache(ref);
  if (!opts.yes) {
    if (!stdin.isTTY) {
      throw new UsageError(`refusing to destroy cache '${t.cache}' without confirmation: stdin is not a terminal (pass --yes)`);
    }
    // Make sure the cache exists (and the token sees it) before asking.
    await t.client.cacheConfig(t.cache);
    const rl = createInterface({ input: stdin, output: ctx.stderr });
    // On a terminal, readline takes Ctrl-C itself: turn it into an interruption (exit 130).
    const abort = new AbortController();
    rl.on('SIGINT', () => abort.abort());
    let answer: string;
    try {
      answer = (await rl.question(destroyPrompt(t.cache, t.name), { signal: abort.signal })).trim();
    } catch (e) {
      if (abort.signal.aborted) throw new InterruptedError();
      throw e;
    } finally {
      rl.close();
    }
    if (answer !== t.cache) throw new CliError(`'${answer}' does not match '${t.cache}': nothing was destroyed`);
  }
  await destroyCache(t.client, t.cache);
  if (ctx.json) printJson(ctx, { destroyed: t.cache });
  else ctx.stdout.write(`${cacheDestroyed(t.cache)}\n`);
}
