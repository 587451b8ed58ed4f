// One push from roots to a summary: closure, upstream filter, missing-paths
// query, then the scheduled upload. `loft push` runs it once; watch-store once per batch.
import type { CacheConfig, LoftClient } from '../../client/http.ts';
import type { ChunkWorkerPool } from '../../compression/pool.ts';
import { queryPathInfos } from './closure.ts';
import { filterUpstream, queryMissing } from './plan.ts';
import { runPush } from './run.ts';
import type { PushEvent, PushSummary } from './types.ts';

export interface PushTarget {
  client: LoftClient;
  cache: string;
  config: CacheConfig;
}

export interface PushPathsOptions {
  closure: boolean;
  jobs: number;
  ignoreUpstreamFilter: boolean;
  pool: ChunkWorkerPool;
  /** Paths already pushed or found present earlier; not queried again. */
  known?: Set<string>;
  emit: (ev: PushEvent) => void;
}

export async function pushPaths(target: PushTarget, roots: string[], opts: PushPathsOptions): Promise<PushSummary> {
  const started = performance.now();
  const infos = (await queryPathInfos(roots, opts.closure)).filter((i) => !opts.known?.has(i.path));
  const { candidates, upstream } = opts.ignoreUpstreamFilter
    ? { candidates: infos, upstream: [] }
    : filterUpstream(infos, target.config.upstream_cache_key_names);
  const missing = await queryMissing(target.client, target.cache, candidates, target.config.store_dir);
  const toPush = candidates.filter((i) => missing.has(i.path));
  const present = candidates.filter((i) => !missing.has(i.path)).map((i) => i.path);
  opts.emit({
    type: 'plan',
    cache: target.cache,
    toPush: toPush.length,
    narBytes: toPush.reduce((n, i) => n + i.narSize, 0),
    skippedPresent: present.length,
    skippedUpstream: upstream.length,
  });
  const run = await runPush(target.client, target.cache, toPush, { jobs: opts.jobs, pool: opts.pool, emit: opts.emit });
  for (const p of [...run.pushed, ...present, ...upstream.map((i) => i.path)]) opts.known?.add(p);
  return {
    cache: target.cache,
    pathsTotal: infos.length,
    pushed: run.pushed,
    skippedPresent: present,
    skippedUpstream: upstream.map((i) => i.path),
    failed: run.failed,
    bytesSent: run.bytesSent,
    narBytes: run.narBytes,
    bytesDeduplicated: run.bytesDeduplicated,
    seconds: (performance.now() - started) / 1000,
  };
}
