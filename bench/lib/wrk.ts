// wrk (one thread, pinned to the client core) with a Lua script that cycles through request paths
// and prints latency percentiles as JSON.
import { fileURLToPath } from 'node:url';
import { CLIENT_CORE, pinned, run } from './common.ts';

const SCRIPT = fileURLToPath(new URL('./wrk-paths.lua', import.meta.url));

export interface WrkResult {
  requests: number;
  rps: number;
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
  maxMs: number;
  /** Responses that were not 2xx/3xx (wrk counts them as errors). */
  non2xx: number;
  socketErrors: number;
}

/** GETs `pathsFile`'s paths against `base` on `connections` keep-alive connections for `seconds`. */
export async function wrk(base: string, pathsFile: string, connections: number, seconds: number): Promise<WrkResult> {
  const [cmd, args] = pinned(CLIENT_CORE, 'wrk', [
    '-t1',
    `-c${connections}`,
    `-d${seconds}s`,
    '--timeout',
    '5s',
    '--latency',
    '-s',
    SCRIPT,
    base,
    '--',
    pathsFile,
  ]);
  const { stdout } = await run(cmd, args, { timeoutMs: (seconds + 30) * 1000 });
  const line = stdout.split('\n').find((l) => l.startsWith('WRKJSON '));
  if (!line) throw new Error(`wrk printed no summary:\n${stdout}`);
  const j = JSON.parse(line.slice('WRKJSON '.length)) as Record<string, number>;
  return {
    requests: j.requests,
    rps: j.requests / (j.duration_us / 1e6),
    p50Ms: j.p50_us / 1000,
    p90Ms: j.p90_us / 1000,
    p99Ms: j.p99_us / 1000,
    maxMs: j.max_us / 1000,
    non2xx: j.errors_status,
    socketErrors: j.errors_connect + j.errors_read + j.errors_write + j.errors_timeout,
  };
}
