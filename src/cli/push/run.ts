// Pushes a set of paths with up to `jobs` NAR streams at once, in dependency order.
import path from 'node:path';
import type { LoftClient } from '../../client/http.ts';
import { pushNar, pushUploader, type NarMeta } from '../../client/push-nar.ts';
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
  if (infos.length === 0) return { pushed: [], failed: [], bytesSent: 0, narBytes: 0, bytesDeduplicated: 0 };
  const schedule = new PushSchedule(infos);
  const serverInfo = await client.serverInfo();
  // One uploader for every path: small NARs and NAR tails share requests, so the server's packs stay large.
  const uploader = pushUploader(client, cache, serverInfo, opts.pool);
  const result: RunResult = { pushed: [], failed: [], bytesSent: 0, narBytes: 0, bytesDeduplicated: 0 };
  const fail = (p: string, error: string) => {
    result.failed.push({ path: p, error });
    opts.emit({ type: 'failed', path: p, error });
  };

  /** Paths being read; a path that only waits for its upload and commit leaves its job to the next one. */
  const reading = new Set<string>();
  const pushOne = async (info: PathInfo) => {
    const started = performance.now();
    opts.emit({ type: 'start', path: info.path, narSize: info.narSize });
    reading.add(info.path);
    try {
      const r = await pushNar(client, cache, narMeta(info), dumpNar(info.path), {
        pool: opts.pool,
        uploader,
        serverInfo,
        onRead: () => {
          reading.delete(info.path);
          wake?.();
        },
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
    } finally {
      reading.delete(info.path);
    }
  };

  // Up to `jobs` paths are read at once; each waits for its chunks to be stored and commits in the
  // background (at most `jobs` more of them), and a path whose references are not committed yet waits.
  const running = new Set<Promise<void>>();
  let wake: (() => void) | undefined;
  try {
    while (schedule.unfinished > 0) {
      let info: PathInfo | undefined;
      while (reading.size < opts.jobs && running.size < 2 * opts.jobs && (info = schedule.next())) {
        const p: Promise<void> = pushOne(info).finally(() => running.delete(p));
        running.add(p);
      }
      if (running.size === 0) break;
      await Promise.race([...running, new Promise<void>((resolve) => (wake = resolve))]);
      wake = undefined;
    }
  } finally {
    await uploader.close();
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
