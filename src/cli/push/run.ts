// Pushes a set of paths with up to `jobs` NAR streams at once, in dependency order.
import path from 'node:path';
import type { LoftClient } from '../../client/http.ts';
import { pushNar, type NarMeta } from '../../client/push-nar.ts';
import type { ChunkWorkerPool } from '../../compression/pool.ts';
import { dumpNar } from './dump.ts';
import { PushSchedule } from './plan.ts';
import type { PathInfo, PushEvent } from './types.ts';

export interface RunOptions {
  jobs: number;
  /** Shared by every path, so -j N streams do not each start a thread per core. */
  pool: ChunkWorkerPool;
  emit: (ev: PushEvent) => void;
}

export interface RunResult {
  pushed: string[];
  failed: Array<{ path: string; error: string }>;
  bytesSent: number;
  narBytes: number;
  bytesDeduplicated: number;
}

export async function runPush(client: LoftClient, cache: string, infos: PathInfo[], opts: RunOptions): Promise<RunResult> {
  const schedule = new PushSchedule(infos);
  const result: RunResult = { pushed: [], failed: [], bytesSent: 0, narBytes: 0, bytesDeduplicated: 0 };
  const fail = (p: string, error: string) => {
    result.failed.push({ path: p, error });
    opts.emit({ type: 'failed', path: p, error });
  };

  const pushOne = async (info: PathInfo) => {
    const started = performance.now();
    opts.emit({ type: 'start', path: info.path, narSize: info.narSize });
    try {
      const r = await pushNar(client, cache, narMeta(info), dumpNar(info.path), {
        pool: opts.pool,
        reopen: () => dumpNar(info.path),
        onProgress: (ev) => {
          if (ev.type === 'read') opts.emit({ type: 'read', path: info.path, bytes: ev.bytes });
          else if (ev.type === 'uploaded') opts.emit({ type: 'sent', path: info.path, bytes: ev.bytes });
          else opts.emit({ type: 'deduplicated', path: info.path, bytes: ev.bytes });
        },
      });
      result.pushed.push(info.path);
      result.bytesSent += r.uploadedBytes;
      result.narBytes += r.narSize;
      result.bytesDeduplicated += r.dedupedBytes;
      schedule.complete(info.path);
      const seconds = (performance.now() - started) / 1000;
      opts.emit({ type: 'done', path: info.path, narSize: r.narSize, bytesSent: r.uploadedBytes, bytesDeduplicated: r.dedupedBytes, seconds });
    } catch (e) {
      fail(info.path, singleLine((e as Error).message));
      for (const blocked of schedule.fail(info.path)) fail(blocked, `not pushed: its reference ${info.path} failed`);
    }
  };

  // Workers pull ready paths; an idle worker waits for any running push to finish and free new ones.
  const running = new Set<Promise<void>>();
  while (schedule.unfinished > 0) {
    let info: PathInfo | undefined;
    while (running.size < opts.jobs && (info = schedule.next())) {
      const p: Promise<void> = pushOne(info).finally(() => running.delete(p));
      running.add(p);
    }
    if (running.size === 0) break;
    await Promise.race(running);
  }
  return result;
}

/** The push API takes references and deriver as store base names. */
export function narMeta(info: PathInfo): NarMeta {
  return {
    storePath: info.path,
    narHash: info.narHash,
    narSize: info.narSize,
    references: info.references.map((r) => path.basename(r)),
    deriver: info.deriver ? path.basename(info.deriver) : undefined,
    sigs: info.sigs,
    ca: info.ca,
  };
}

function singleLine(message: string): string {
  return message.replace(/\s*\n\s*/g, ' ').trim();
}
