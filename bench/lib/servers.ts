// Loft (the built `loft serve`, one process) and nginx (one worker) as child processes pinned to
// the server core with taskset.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { openSync, readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { DIST, freePort, pinned, rssOf, SERVER_CORE, tempDir } from './common.ts';

export interface ServerProcess {
  readonly pid: number;
  readonly url: string;
  output(): string;
  rss(): Promise<{ hwm: number; rss: number }>;
  stop(): Promise<void>;
}

/**
 * The server's stdout and stderr go to a file, as they would under a service manager: the bench
 * process (on the load generator's core) never spends time reading a busy server's log lines.
 */
function logTo(file: string): { stdio: ['ignore', number, number]; output(): string } {
  const fd = openSync(file, 'a');
  return {
    stdio: ['ignore', fd, fd],
    output: () => {
      const text = readFileSync(file, 'utf8');
      return text.slice(-(Number(process.env.BENCH_SERVER_LOG_BYTES) || 20_000));
    },
  };
}

function track(child: ChildProcess, log: { output(): string }): { output(): string; exited: Promise<void> } {
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return { output: log.output, exited };
}

async function waitHttp(url: string, child: ChildProcess, output: () => string, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`server exited early:\n${output()}`);
    try {
      const res = await fetch(url);
      await res.body?.cancel();
      if (res.status < 500) return;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`server at ${url} did not answer within ${timeoutMs} ms:\n${output()}`);
    await sleep(100);
  }
}

export interface LoftServer extends ServerProcess {
  token: string;
  dataDir: string;
  databaseUrl: string;
  /** POST /_api/v1/cache-config/NAME (public by default). */
  createCache(name: string, isPublic?: boolean): Promise<void>;
}

export interface LoftOptions {
  /** Default: SQLite in the data dir. */
  databaseUrl?: string;
  /** Writes a V8 CPU profile (.cpuprofile) into this directory when the server stops. */
  cpuProfDir?: string;
  env?: NodeJS.ProcessEnv;
}

/** `node dist/src/bin/loft.js serve` (run `npm run build` first), pinned to the server core. */
export async function startLoft(opts: LoftOptions = {}): Promise<LoftServer> {
  const tmp = await tempDir('loft-bench-server-');
  const port = await freePort();
  const token = `bench-${randomBytes(12).toString('hex')}`;
  const databaseUrl = opts.databaseUrl ?? `sqlite:${path.join(tmp.path, 'loft.db')}`;
  const nodeArgs = opts.cpuProfDir ? ['--cpu-prof', '--cpu-prof-dir', opts.cpuProfDir] : [];
  const [cmd, args] = pinned(SERVER_CORE, process.execPath, [
    ...nodeArgs,
    path.join(DIST, 'src/bin/loft.js'),
    'serve',
    '--listen',
    `127.0.0.1:${port}`,
  ]);
  const log = logTo(path.join(tmp.path, 'server.log'));
  const child = spawn(cmd, args, {
    cwd: tmp.path,
    env: {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      LOFT_DATA_DIR: tmp.path,
      LOFT_DATABASE_URL: databaseUrl,
      LOFT_ADMIN_TOKEN: token,
      LOFT_TOKEN_HS256_SECRET: randomBytes(32).toString('base64'),
      LOFT_DEFAULT_CACHE: '',
      ...opts.env,
    },
    stdio: log.stdio,
  });
  const t = track(child, log);
  const url = `http://127.0.0.1:${port}`;
  await waitHttp(`${url}/v1/healthz`, child, t.output);
  // taskset execs node: the pid is the server's own.
  const pid = child.pid!;
  return {
    pid,
    url,
    token,
    dataDir: tmp.path,
    databaseUrl,
    output: t.output,
    rss: () => rssOf(pid),
    async createCache(name, isPublic = true) {
      const res = await fetch(`${url}/_api/v1/cache-config/${name}`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ is_public: isPublic }),
      });
      if (res.status !== 201) throw new Error(`creating cache ${name}: ${res.status} ${await res.text()}`);
    },
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
        await t.exited;
        clearTimeout(timer);
      }
      await tmp.cleanup();
    },
  };
}

/**
 * Debian's nginx serving `root` as static files: one worker process (plus the master, both on the
 * server core), sendfile, access log off, keep-alive connections that are never closed by count.
 */
export async function startNginx(root: string): Promise<ServerProcess> {
  const tmp = await tempDir('loft-bench-nginx-');
  const port = await freePort();
  const conf = path.join(tmp.path, 'nginx.conf');
  await mkdir(path.join(tmp.path, 'temp'), { recursive: true });
  const asRoot = process.getuid?.() === 0 ? 'user root;' : '';
  await writeFile(
    conf,
    `${asRoot}
worker_processes 1;
daemon off;
pid ${tmp.path}/nginx.pid;
error_log ${tmp.path}/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  tcp_nodelay on;
  keepalive_timeout 65;
  keepalive_requests 10000000;
  client_body_temp_path ${tmp.path}/temp/body;
  proxy_temp_path ${tmp.path}/temp/proxy;
  fastcgi_temp_path ${tmp.path}/temp/fastcgi;
  uwsgi_temp_path ${tmp.path}/temp/uwsgi;
  scgi_temp_path ${tmp.path}/temp/scgi;
  types {
    text/x-nix-narinfo narinfo;
    text/x-nix-cache-info nix-cache-info;
    application/x-nix-nar nar zst;
  }
  default_type application/octet-stream;
  server {
    listen 127.0.0.1:${port};
    root ${root};
  }
}
`,
  );
  const [cmd, args] = pinned(SERVER_CORE, 'nginx', ['-e', path.join(tmp.path, 'error.log'), '-p', tmp.path, '-c', conf]);
  const log = logTo(path.join(tmp.path, 'nginx.out'));
  const child = spawn(cmd, args, { stdio: log.stdio });
  const t = track(child, log);
  const url = `http://127.0.0.1:${port}`;
  await waitHttp(`${url}/nix-cache-info`, child, t.output);
  const pid = child.pid!;
  return {
    pid,
    url,
    output: t.output,
    rss: () => rssOf(pid),
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGQUIT');
        const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
        await t.exited;
        clearTimeout(timer);
      }
      await tmp.cleanup();
    },
  };
}

/** Waits for a child process to exit; resolves with its exit code. */
export async function exitOf(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
  const [code] = (await once(child, 'exit')) as [number | null];
  return code;
}
