// A throwaway PostgreSQL cluster of our own (initdb into a temporary directory, its own port and
// socket directory), so a test can stop and restart the database without touching the machine's
// main cluster, which other tests use concurrently.
import { execFile } from 'node:child_process';
import { chown, mkdir, readdir, readFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { freePort } from './processes.ts';
import { makeTempDir } from './tmp.ts';

const exec = promisify(execFile);
const ROOT = '/usr/lib/postgresql';
const OS_USER = 'postgres';

/** The newest installed server's bin directory, or undefined. */
async function binDir(): Promise<string | undefined> {
  const versions = await readdir(ROOT).catch(() => [] as string[]);
  const usable = versions.filter((v) => existsSync(path.join(ROOT, v, 'bin', 'initdb'))).sort((a, b) => Number(b) - Number(a));
  return usable[0] && path.join(ROOT, usable[0], 'bin');
}

/** Why a private cluster cannot be started here, or undefined when it can. */
export async function privatePostgresUnavailable(): Promise<string | undefined> {
  if (!(await binDir())) return `no PostgreSQL server under ${ROOT}`;
  if (process.getuid?.() !== 0) return 'starting a private PostgreSQL as the postgres user needs root (runuser)';
  try {
    await exec('id', ['-u', OS_USER]);
  } catch {
    return `no "${OS_USER}" OS user`;
  }
  return undefined;
}

export interface PrivatePostgres {
  /** postgresql://postgres@127.0.0.1:PORT/postgres (trust auth). */
  url: string;
  port: number;
  start(): Promise<void>;
  /** Fast shutdown: sessions are terminated, like a database restart or failover. */
  stop(): Promise<void>;
  /**
   * SIGSTOP (or SIGCONT) the postmaster and its backends: connections stay open but nothing
   * answers, as when the database host or the network to it is lost.
   */
  freeze(): Promise<void>;
  thaw(): Promise<void>;
  /** Stops it (immediately) and deletes the cluster. */
  destroy(): Promise<void>;
}

/** Signals the cluster's own processes, found from its postmaster.pid (never by name). */
async function signalAll(data: string, signal: NodeJS.Signals): Promise<void> {
  const postmaster = Number((await readFile(path.join(data, 'postmaster.pid'), 'utf8')).split('\n')[0]);
  const { stdout } = await exec('ps', ['-o', 'pid=', '--ppid', String(postmaster)]);
  const pids = [...stdout.split('\n').filter((l) => l.trim()).map(Number), postmaster];
  for (const pid of pids) process.kill(pid, signal);
}

export async function startPrivatePostgres(): Promise<PrivatePostgres> {
  const bin = await binDir();
  if (!bin) throw new Error(`no PostgreSQL server under ${ROOT}`);
  const tmp = await makeTempDir('loft-pg-');
  const data = path.join(tmp.path, 'data');
  const socket = path.join(tmp.path, 'socket');
  await mkdir(socket);
  const { stdout: uid } = await exec('id', ['-u', OS_USER]);
  const { stdout: gid } = await exec('id', ['-g', OS_USER]);
  for (const p of [tmp.path, socket]) await chown(p, Number(uid), Number(gid));
  const asPostgres = (tool: string, args: string[]) =>
    exec('runuser', ['-u', OS_USER, '--', path.join(bin, tool), ...args], { cwd: tmp.path }).catch((e: Error & { stderr?: string }) => {
      throw new Error(`${tool} ${args.join(' ')}: ${e.stderr || e.message}`);
    });
  await asPostgres('initdb', ['-D', data, '-U', 'postgres', '--auth=trust', '--no-sync', '--no-instructions']);
  const port = await freePort();
  const options = `-p ${port} -k ${socket} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=40`;
  const pg: PrivatePostgres = {
    url: `postgresql://postgres@127.0.0.1:${port}/postgres`,
    port,
    start: () => asPostgres('pg_ctl', ['-D', data, '-o', options, '-l', path.join(tmp.path, 'log'), '-w', 'start']).then(() => {}),
    stop: () => asPostgres('pg_ctl', ['-D', data, '-m', 'fast', '-w', 'stop']).then(() => {}),
    freeze: () => signalAll(data, 'SIGSTOP'),
    thaw: () => signalAll(data, 'SIGCONT'),
    async destroy() {
      await signalAll(data, 'SIGCONT').catch(() => {});
      await asPostgres('pg_ctl', ['-D', data, '-m', 'immediate', '-w', 'stop']).catch(() => {});
      await tmp.cleanup();
    },
  };
  try {
    await pg.start();
  } catch (err) {
    await tmp.cleanup();
    throw err;
  }
  return pg;
}
