import { ChunkWorkerPool } from '../../compression/pool.ts';
import type { CliContext } from '../context.ts';
import { UsageError } from '../errors.ts';
import { createProgressRenderer } from '../output/progress.ts';
import { formatSummary } from '../output/summary.ts';
import { PathBatcher } from '../push/batcher.ts';
import { validPaths } from '../push/closure.ts';
import { pushPaths } from '../push/session.ts';
import { watchStore } from '../push/watcher.ts';

export interface WatchOptions {
  jobs: number;
  ignoreUpstreamFilter?: boolean;
  /** Directory to watch (default: the cache's store_dir, normally /nix/store). */
  storeDir?: string;
}

/**
 * `loft watch-store CACHE`: pushes every new store path (with its closure) in
 * batches until SIGINT/SIGTERM, then finishes the batch in flight and returns.
 */
export async function watchStoreCommand(cacheRef: string, opts: WatchOptions, ctx: CliContext): Promise<void> {
  if (!Number.isInteger(opts.jobs) || opts.jobs < 1) throw new UsageError(`--jobs must be a positive integer, got ${opts.jobs}`);
  const target = await ctx.resolveCache(cacheRef);
  const config = await target.client.cacheConfig(target.cache);
  const storeDir = opts.storeDir ?? config.store_dir;
  const pool = new ChunkWorkerPool();
  /** Pushed, present or upstream: never asked about again. */
  const known = new Set<string>();
  const queue: string[][] = [];
  let wake: () => void = () => {};
  let stopping = false;
  let failure: Error | undefined;

  const pushBatch = async (batch: string[]) => {
    const progress = createProgressRenderer(ctx.stderr);
    try {
      // A directory can appear before Nix registers it; unregistered ones come back with their lock's removal.
      const roots = await validPaths(batch.filter((p) => !known.has(p)));
      if (roots.length === 0) return;
      const summary = await pushPaths({ client: target.client, cache: target.cache, config }, roots, {
        closure: true,
        jobs: opts.jobs,
        ignoreUpstreamFilter: opts.ignoreUpstreamFilter ?? false,
        pool,
        known,
        emit: (ev) => progress.onEvent(ev),
      });
      progress.stop();
      ctx.stdout.write(`${formatSummary(summary)}\n`);
    } catch (e) {
      progress.stop();
      ctx.stderr.write(`error: batch of ${batch.length} paths not pushed: ${(e as Error).message}\n`);
    }
  };

  const batcher = new PathBatcher((batch) => {
    queue.push(batch);
    wake();
  });
  const watcher = watchStore({
    storeDir,
    onPath: (p) => {
      if (!known.has(p)) batcher.add(p);
    },
    onError: (e) => stop(e),
  });
  const stop = (e?: Error) => {
    failure ??= e;
    stopping = true;
    wake();
  };
  const onSignal = () => stop();
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  ctx.stderr.write(`watching ${storeDir} for new paths to push to ${target.cache}\n`);

  try {
    // Batches are pushed one at a time, so `known` is up to date for the next one.
    while (!stopping) {
      const batch = queue.shift();
      if (batch) await pushBatch(batch);
      else await new Promise<void>((resolve) => (wake = resolve));
    }
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    watcher.close();
    const dropped = batcher.close().length + queue.flat().length;
    if (dropped > 0) ctx.stderr.write(`stopped; ${dropped} new paths were not pushed\n`);
    await pool.close();
  }
  if (failure) throw failure;
}
