// Shared helpers of the issue-7 benchmarks: settings, processes, statistics, results.
import { execFile, execFileSync, spawnSync } from 'node:child_process';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';

const execFileP = promisify(execFile);

export const REPO = fileURLToPath(new URL('../..', import.meta.url));
/** The compiled Loft the benches run: bench/run.sh builds a private copy (BENCH_DIST) so a concurrent
 *  `npm run build` in the repo cannot change or remove it mid-run; otherwise the repo's dist/. */
export const DIST = process.env.BENCH_DIST ?? path.join(REPO, 'dist');
export const QUICK = process.env.BENCH_QUICK === '1';
/** Pairs of runs per figure (the median is reported). */
export const RUNS = Math.max(1, Number(process.env.BENCH_RUNS ?? 3));
/** Where each bench writes `<name>.json` for the report. */
export const OUT_DIR = process.env.BENCH_OUT ?? path.join(os.tmpdir(), 'loft-bench-results');
/** The server (Loft or nginx) gets this core; load generators and clients the other one. */
export const SERVER_CORE = process.env.BENCH_SERVER_CORE ?? '0';
export const CLIENT_CORE = process.env.BENCH_CLIENT_CORE ?? '1';
export const MB = 1e6;
export const MiB = 1024 * 1024;

export function median(xs: number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** `f` rounded to `digits` significant-looking decimals, for tables. */
export function round(x: number, digits = 2): number {
  const p = 10 ** digits;
  return Math.round(x * p) / p;
}

export function log(msg: string): void {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);
}

/** Runs a command to completion; throws with its stderr on a non-zero exit. */
export async function run(
  cmd: string,
  args: string[],
  opts: { env?: NodeJS.ProcessEnv; cwd?: string; timeoutMs?: number } = {},
): Promise<{ stdout: string; stderr: string }> {
  try {
    return await execFileP(cmd, args, {
      env: opts.env ?? process.env,
      cwd: opts.cwd,
      maxBuffer: 256 * MiB,
      timeout: opts.timeoutMs ?? 15 * 60_000,
    });
  } catch (e) {
    const err = e as Error & { stderr?: string; code?: number };
    throw new Error(`${cmd} ${args.join(' ').slice(0, 300)} failed (exit ${err.code}):\n${(err.stderr ?? err.message).slice(-3000)}`);
  }
}

/** Bytes of memory primeMemory() touches: more than one timed run allocates (a NAR store, a spool, page cache). */
const PRIME_BYTES = 2000 * MiB;

/**
 * Writes and frees 2 GB of tmpfs just before a timed run, so every run starts from the same memory
 * state. On this kind of VM the guest hands pages freed for a couple of seconds back to the host, and
 * touching them again costs kernel time: a 300 MB `nix-store -r` took 0.8 s right after another one and
 * 1.0–1.2 s after 5 s of idle (0.2 s vs 0.4–0.7 s of system time), which made whichever side had waited
 * before its run look slower.
 */
export async function primeMemory(): Promise<void> {
  await run('sh', ['-c', `head -c ${PRIME_BYTES} /dev/zero > /dev/shm/loft-bench-prime; rm -f /dev/shm/loft-bench-prime`]);
}

/** `cmd args` pinned to one core with taskset. */
export function pinned(core: string, cmd: string, args: string[]): [string, string[]] {
  return ['taskset', ['-c', core, cmd, ...args]];
}

export async function timed<T>(fn: () => Promise<T>): Promise<{ ms: number; value: T }> {
  const t0 = performance.now();
  const value = await fn();
  return { ms: performance.now() - t0, value };
}

export { makeTempDir as tempDir } from '../../test/helpers/tmp.ts';
export { freePort } from '../../test/helpers/processes.ts';

export interface Machine {
  cpu: string;
  cores: number;
  memGiB: number;
  node: string;
  date: string;
  commit: string;
  nginx: string;
  wrk: string;
  nix: string;
}

function firstLine(cmd: string, args: string[]): string {
  // Some tools (nginx -v) print their version on stderr.
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  return `${r.stdout ?? ''}${r.stderr ?? ''}`.split('\n')[0].trim() || 'unknown';
}

export function machine(): Machine {
  let cpu = os.cpus()[0]?.model ?? 'unknown CPU';
  try {
    const m = /^Model name:\s*(.+)$/m.exec(execFileSync('lscpu', { encoding: 'utf8' }));
    if (m) cpu = m[1].trim();
  } catch {
    // lscpu missing: keep os.cpus()
  }
  return {
    cpu,
    cores: os.cpus().length,
    memGiB: round(os.totalmem() / 2 ** 30, 1),
    node: process.versions.node,
    date: new Date().toISOString().slice(0, 16).replace('T', ' ') + ' UTC',
    commit: firstLine('git', ['-C', REPO, 'rev-parse', '--short', 'HEAD']) + (dirty() ? ' (+ uncommitted changes)' : ''),
    nginx: firstLine('nginx', ['-v']).replace(/^nginx version:\s*/, ''),
    wrk: firstLine('wrk', ['-v']).split(' [')[0],
    nix: firstLine('nix', ['--version']),
  };
}

function dirty(): boolean {
  try {
    return execFileSync('git', ['-C', REPO, 'status', '--porcelain', '--untracked-files=no'], { encoding: 'utf8' }).trim() !== '';
  } catch {
    return false;
  }
}

export async function writeResult(name: string, result: unknown): Promise<void> {
  await mkdir(OUT_DIR, { recursive: true });
  await writeFile(path.join(OUT_DIR, `${name}.json`), JSON.stringify(result, null, 2));
  log(`${name}: results in ${path.join(OUT_DIR, `${name}.json`)}`);
}

export async function readResult<T>(name: string): Promise<T | undefined> {
  try {
    return JSON.parse(await readFile(path.join(OUT_DIR, `${name}.json`), 'utf8')) as T;
  } catch {
    return undefined;
  }
}

/** Nix settings for the benches: no internet substituters, a private client cache dir. */
export function nixEnv(dir: string, extra: string[] = []): NodeJS.ProcessEnv {
  return {
    ...process.env,
    NIX_CONFIG: ['experimental-features = nix-command', 'substituters =', 'sandbox = false', 'build-users-group =', ...extra].join('\n'),
    XDG_CACHE_HOME: path.join(dir, 'xdg-cache'),
  };
}

export interface BenchPaths {
  big: string;
  others: string[];
  bigEdited: string;
}

/**
 * Builds bench/lib/paths.nix: the large path, the others of the push set, and the edited large path.
 * The push set is issue 10's: ≥ 800 MB in ≥ 20 paths (256 MiB + 20 × 30 MiB = 856 MiB in 21 paths).
 */
export async function buildBenchPaths(): Promise<BenchPaths> {
  const nixFile = path.join(REPO, 'bench/lib/paths.nix');
  const others = QUICK ? 3 : 20;
  const sizes = QUICK
    ? ['--arg', 'bigMiB', '64', '--arg', 'otherMiB', '24', '--arg', 'others', String(others)]
    : ['--arg', 'bigMiB', '256', '--arg', 'otherMiB', '30', '--arg', 'others', String(others)];
  const env = nixEnv(os.tmpdir());
  const base = ['--no-out-link', nixFile, ...sizes];
  const attrs = ['big', ...Array.from({ length: others }, (_, i) => `other${i}`)].flatMap((a) => ['-A', a]);
  const out = (await run('nix-build', [...base, ...attrs], { env })).stdout.trim().split('\n');
  const edited = (await run('nix-build', [...base, '-A', 'big', '--arg', 'edit', 'true'], { env })).stdout.trim();
  return { big: out[0], others: out.slice(1), bigEdited: edited };
}

/** Sum of file sizes under a directory (bytes written by `nix copy --to file://`). */
export async function dirBytes(dir: string): Promise<number> {
  const { stdout } = await run('du', ['-sb', '--apparent-size', dir]);
  return Number(stdout.split('\t')[0]);
}

/** Peak (VmHWM) and current (VmRSS) resident set of a process, in bytes. */
export async function rssOf(pid: number): Promise<{ hwm: number; rss: number }> {
  const text = await readFile(`/proc/${pid}/status`, 'utf8');
  const kb = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? NaN) * 1024;
  return { hwm: kb('VmHWM'), rss: kb('VmRSS') };
}

/** Resets a process's VmHWM to its current RSS (Linux ≥ 4.0, needs permission on the process). */
export async function resetPeakRss(pid: number): Promise<boolean> {
  try {
    await writeFile(`/proc/${pid}/clear_refs`, '5');
    return true;
  } catch {
    return false;
  }
}

export interface CpuTimes {
  /** ms of CPU of the process's main thread (tid = pid). */
  mainUser: number;
  mainSys: number;
  /** ms of CPU of every other thread (libuv threadpool, worker threads, V8 helpers). */
  otherUser: number;
  otherSys: number;
}

/** CPU time used so far by each thread of a process, from /proc/PID/task/TID/stat (clock ticks of 10 ms). */
export async function cpuTimes(pid: number): Promise<CpuTimes> {
  const { readdir } = await import('node:fs/promises');
  const t: CpuTimes = { mainUser: 0, mainSys: 0, otherUser: 0, otherSys: 0 };
  for (const tid of await readdir(`/proc/${pid}/task`)) {
    const stat = await readFile(`/proc/${pid}/task/${tid}/stat`, 'utf8').catch(() => '');
    if (!stat) continue;
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const [user, sys] = [Number(f[11]) * 10, Number(f[12]) * 10];
    if (tid === String(pid)) {
      t.mainUser += user;
      t.mainSys += sys;
    } else {
      t.otherUser += user;
      t.otherSys += sys;
    }
  }
  return t;
}

/**
 * Resolves once process `pid` (a server) has used under 10 ms of CPU in 500 ms, or after 30 s: a
 * timed run then does not share the server's core with work left from the step before it.
 */
export async function settle(pid: number): Promise<void> {
  const deadline = Date.now() + 30_000;
  const total = (t: CpuTimes) => t.mainUser + t.mainSys + t.otherUser + t.otherSys;
  let last = total(await cpuTimes(pid));
  while (Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 500));
    const now = total(await cpuTimes(pid));
    if (now - last < 10) return;
    last = now;
  }
}

export function cpuDelta(a: CpuTimes, b: CpuTimes): CpuTimes {
  return { mainUser: b.mainUser - a.mainUser, mainSys: b.mainSys - a.mainSys, otherUser: b.otherUser - a.otherUser, otherSys: b.otherSys - a.otherSys };
}

/**
 * Replaces the section `heading` of docs/benchmarks.md (up to the next `## `) with `body`, or
 * appends it: for benches that keep their own section beside the report's.
 */
export async function writeDocSection(heading: string, body: string): Promise<void> {
  const doc = path.join(REPO, 'docs/benchmarks.md');
  const existing = await readFile(doc, 'utf8').catch(() => '# Benchmarks\n');
  const start = existing.indexOf(heading);
  let next: string;
  if (start < 0) next = `${existing.trimEnd()}\n\n${body}`;
  else {
    const end = existing.indexOf('\n## ', start + heading.length);
    next = existing.slice(0, start) + body + (end < 0 ? '' : existing.slice(end + 1));
  }
  await writeFile(doc, next.endsWith('\n') ? next : `${next}\n`);
}

export interface Download {
  bytes: number;
  seconds: number;
}

/** One streaming GET with curl on the client core, body discarded. */
export async function curlGet(url: string): Promise<Download> {
  const [cmd, args] = pinned(CLIENT_CORE, 'curl', ['-sS', '-o', '/dev/null', '-w', '%{http_code} %{size_download} %{time_total}', url]);
  const { stdout } = await run(cmd, args, { timeoutMs: 10 * 60_000 });
  const [status, bytes, seconds] = stdout.trim().split(' ');
  if (status !== '200') throw new Error(`GET ${url}: HTTP ${status}`);
  return { bytes: Number(bytes), seconds: Number(seconds) };
}
