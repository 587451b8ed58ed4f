// `loft serve` as real child processes, the way production runs it: replicas, workers, migrations,
// signals. Output is captured so a failure message shows what the process said.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import type { S3StorageConfig } from '../../src/storage/s3.ts';

const REPO = fileURLToPath(new URL('../..', import.meta.url));
const LOFT = fileURLToPath(new URL('../../src/bin/loft.ts', import.meta.url));
/** The compiled entry `npm run build` makes (and `npm start` runs). */
export const LOFT_DIST = fileURLToPath(new URL('../../dist/src/bin/loft.js', import.meta.url));

export type Mode = 'monolithic' | 'api' | 'worker' | 'migrate' | 'check-config';

/** The environment of a production replica: PostgreSQL (or SQLite) + S3 (or a local folder). */
export function loftEnv(o: {
  databaseUrl: string;
  dataDir: string;
  adminToken: string;
  tokenSecret: string;
  s3?: S3StorageConfig;
}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    LOFT_DATABASE_URL: o.databaseUrl,
    LOFT_DATA_DIR: o.dataDir,
    LOFT_ADMIN_TOKEN: o.adminToken,
    LOFT_TOKEN_HS256_SECRET: o.tokenSecret,
    LOFT_DEFAULT_CACHE: '',
  };
  if (o.s3) {
    Object.assign(env, {
      LOFT_STORAGE_TYPE: 's3',
      LOFT_S3_BUCKET: o.s3.bucket,
      LOFT_S3_ENDPOINT: o.s3.endpoint,
      LOFT_S3_ACCESS_KEY_ID: o.s3.accessKeyId,
      LOFT_S3_SECRET_ACCESS_KEY: o.s3.secretAccessKey,
    });
  }
  return env;
}

export interface LoftProcess {
  readonly child: ChildProcess;
  /** Set for serving modes: http://127.0.0.1:PORT. */
  readonly url: string;
  /** Everything written so far, stdout and stderr interleaved. */
  output(): string;
  /** Lines of stdout that are JSON log records with this message. */
  logs(msg: string): Record<string, unknown>[];
  /** Resolves with the exit code (null when killed by a signal) and signal. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  running(): boolean;
  /** Sends the signal and waits for the exit. */
  kill(signal?: NodeJS.Signals): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** A port free right now on 127.0.0.1 (another process could take it, which tests accept). */
export async function freePort(): Promise<number> {
  const srv = createServer();
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  const addr = srv.address();
  const port = typeof addr === 'object' && addr ? addr.port : 0;
  srv.close();
  await once(srv, 'close');
  return port;
}

/**
 * Spawns `loft serve --mode MODE` without waiting for anything: from src/ under tsx, or with
 * `dist: true` the compiled build as `npm start` runs it.
 */
export function spawnLoft(o: { mode: Mode; env: NodeJS.ProcessEnv; port?: number; config?: string; dist?: boolean; cwd?: string }): LoftProcess {
  const args = o.dist ? [LOFT_DIST, 'serve', '--mode', o.mode] : ['--import', 'tsx', LOFT, 'serve', '--mode', o.mode];
  if (o.port !== undefined) args.push('--listen', `127.0.0.1:${o.port}`);
  if (o.config) args.push('--config', o.config);
  const child = spawn(process.execPath, args, { cwd: o.cwd ?? REPO, env: o.env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (b: Buffer) => (out += b.toString()));
  child.stderr!.on('data', (b: Buffer) => (out += b.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  const running = () => child.exitCode === null && child.signalCode === null;
  return {
    child,
    url: o.port !== undefined ? `http://127.0.0.1:${o.port}` : '',
    output: () => out,
    logs(msg) {
      const records: Record<string, unknown>[] = [];
      for (const line of out.split('\n')) {
        if (!line.startsWith('{')) continue;
        try {
          const rec = JSON.parse(line) as Record<string, unknown>;
          if (rec.msg === msg) records.push(rec);
        } catch {
          // A line cut by the capture boundary: the next call sees it whole.
        }
      }
      return records;
    },
    exited,
    running,
    async kill(signal = 'SIGTERM') {
      if (running()) child.kill(signal);
      return exited;
    },
  };
}

/** Runs a one-shot mode (migrate, check-config) to its end. */
export async function runLoft(o: { mode: Mode; env: NodeJS.ProcessEnv; config?: string }): Promise<{ code: number | null; output: string }> {
  const p = spawnLoft(o);
  const { code } = await p.exited;
  return { code, output: p.output() };
}

/** `loft serve` on a free port, resolved once GET /v1/healthz answers 200. */
export async function startLoft(o: {
  mode: 'monolithic' | 'api';
  env: NodeJS.ProcessEnv;
  config?: string;
  timeoutMs?: number;
  dist?: boolean;
}): Promise<LoftProcess> {
  const p = spawnLoft({ ...o, port: await freePort() });
  try {
    await waitHealthy(p, o.timeoutMs ?? 30_000);
  } catch (err) {
    await p.kill('SIGKILL');
    throw err;
  }
  return p;
}

export async function waitHealthy(p: LoftProcess, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (!p.running()) throw new Error(`loft exited before answering /v1/healthz:\n${p.output()}`);
    try {
      const res = await fetch(`${p.url}/v1/healthz`, { signal: AbortSignal.timeout(2000) });
      await res.body?.cancel();
      if (res.status === 200) return;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`loft did not become healthy within ${timeoutMs} ms:\n${p.output()}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** Polls `check` until it returns a value other than undefined/false. */
export async function waitFor<T>(what: string, check: () => T | Promise<T>, timeoutMs: number, intervalMs = 50): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v !== undefined && v !== null && v !== false) return v as NonNullable<T>;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}
