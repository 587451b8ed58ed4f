import { ChunkWorkerPool } from '../../compression/pool.ts';
import type { CliContext } from '../context.ts';
import { EXIT, UsageError } from '../errors.ts';
import { createProgressRenderer } from '../output/progress.ts';
import { formatSummary, summaryJson } from '../output/summary.ts';
import { resolveRoots } from '../push/closure.ts';
import { pushPaths } from '../push/session.ts';

export interface PushOptions {
  stdin?: boolean;
  jobs: number;
  ignoreUpstreamFilter?: boolean;
  closure: boolean;
}

/** `loft push CACHE PATHS… | --stdin`: progress on stderr, the summary on stdout; non-zero if a path failed. */
export async function pushCommand(cacheRef: string, paths: string[], opts: PushOptions, ctx: CliContext): Promise<number> {
  if (!Number.isInteger(opts.jobs) || opts.jobs < 1) throw new UsageError(`--jobs must be a positive integer, got ${opts.jobs}`);
  const args = opts.stdin ? [...paths, ...(await readStdinPaths())] : paths;
  if (args.length === 0) throw new UsageError('no paths to push: give store paths or --stdin');
  const target = await ctx.resolveCache(cacheRef);
  const config = await target.client.cacheConfig(target.cache);
  const roots = await resolveRoots(args, config.store_dir);
  const progress = createProgressRenderer(ctx.stderr);
  const pool = new ChunkWorkerPool();
  let summary;
  try {
    summary = await pushPaths({ client: target.client, cache: target.cache, config }, roots, {
      closure: opts.closure,
      jobs: opts.jobs,
      ignoreUpstreamFilter: opts.ignoreUpstreamFilter ?? false,
      pool,
      emit: (ev) => progress.onEvent(ev),
    });
  } finally {
    progress.stop();
    await pool.close();
  }
  ctx.stdout.write(ctx.json ? `${JSON.stringify(summaryJson(summary))}\n` : `${formatSummary(summary)}\n`);
  if (summary.failed.length === 0) return EXIT.OK;
  return summary.pushed.length > 0 ? EXIT.PARTIAL : EXIT.ERROR;
}

/** Store paths on stdin, separated by whitespace (e.g. from `nix-store -qR`). */
async function readStdinPaths(): Promise<string[]> {
  const parts: Buffer[] = [];
  for await (const b of process.stdin) parts.push(b as Buffer);
  return Buffer.concat(parts).toString('utf8').split(/\s+/).filter(Boolean);
}
