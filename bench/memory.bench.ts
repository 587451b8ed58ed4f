// Issue 7, bench 4: peak RSS of the server and of the client while pushing and pulling a 2 GB NAR.
// node --import tsx bench/memory.bench.ts (normally through `npm run bench`; needs `npm run build`).
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { CLIENT_CORE, DIST, log, MB, MiB, pinned, QUICK, REPO, resetPeakRss, round, writeResult } from './lib/common.ts';
import { startLoft, type LoftServer } from './lib/servers.ts';

const SIZE = QUICK ? 256 * MiB : 2048 * MiB;
const COMPILED_CLIENT = path.join(DIST, 'bench/lib/memory-client.js');
/** The compiled client (bench/run.sh builds it), else the TypeScript through tsx (a little more RSS). */
const CLIENT_ARGS = existsSync(COMPILED_CLIENT) ? [COMPILED_CLIENT] : ['--import', 'tsx', path.join(REPO, 'bench/lib/memory-client.ts')];

interface ClientResult {
  mode: string;
  narSize: number;
  baseline: number;
  ms: number;
  peak: number;
  uploadedBytes?: number;
}

/** Runs one client phase while sampling the server's RSS; returns both peaks. */
async function phase(loft: LoftServer, mode: 'push' | 'pull'): Promise<{ client: ClientResult; serverPeak: number; serverSamples: number[] }> {
  await resetPeakRss(loft.pid);
  const [cmd, args] = pinned(CLIENT_CORE, process.execPath, [...CLIENT_ARGS, loft.url, loft.token, 'bench', String(SIZE), mode]);
  const child = spawn(cmd, args, { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (b: Buffer) => (out += b.toString()));
  child.stderr.on('data', (b: Buffer) => (err = (err + b.toString()).slice(-5000)));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  let done = false;
  void exited.then(() => (done = true));
  const samples: number[] = [];
  while (!done) {
    samples.push((await loft.rss()).rss);
    await sleep(500);
  }
  if ((await exited) !== 0) throw new Error(`memory client (${mode}) failed:\n${err}`);
  const client = JSON.parse(out.trim().split('\n').pop()!) as ClientResult;
  return { client, serverPeak: (await loft.rss()).hwm, serverSamples: samples };
}

async function main(): Promise<void> {
  const loft = await startLoft();
  try {
    await loft.createCache('bench');
    const idle = await loft.rss();
    const push = await phase(loft, 'push');
    log(`memory push: ${(SIZE / MB).toFixed(0)} MB in ${Math.round(push.client.ms)} ms; server peak ${(push.serverPeak / MiB).toFixed(0)} MiB, client peak ${(push.client.peak / MiB).toFixed(0)} MiB`);
    const pull = await phase(loft, 'pull');
    log(`memory pull: ${Math.round(pull.client.ms)} ms; server peak ${(pull.serverPeak / MiB).toFixed(0)} MiB, client peak ${(pull.client.peak / MiB).toFixed(0)} MiB`);
    const mib = (b: number) => round(b / MiB, 0);
    // "Flat": the RSS in the second half of the transfer is not above the first half's by much.
    const flat = (s: number[]) => {
      const half = s.slice(Math.floor(s.length / 2));
      const first = s.slice(0, Math.floor(s.length / 2));
      return first.length === 0 || Math.max(...half) <= Math.max(...first) * 1.15 + 16 * MiB;
    };
    await writeResult('memory', {
      narBytes: push.client.narSize,
      serverIdleRssMiB: mib(idle.rss),
      push: {
        ms: Math.round(push.client.ms),
        mbPerS: round(push.client.narSize / MB / (push.client.ms / 1000), 1),
        serverPeakMiB: mib(push.serverPeak),
        clientPeakMiB: mib(push.client.peak),
        clientBaselineMiB: mib(push.client.baseline),
        serverFlat: flat(push.serverSamples),
        serverSamplesMiB: push.serverSamples.map(mib),
      },
      pull: {
        ms: Math.round(pull.client.ms),
        mbPerS: round(pull.client.narSize / MB / (pull.client.ms / 1000), 1),
        serverPeakMiB: mib(pull.serverPeak),
        clientPeakMiB: mib(pull.client.peak),
        clientBaselineMiB: mib(pull.client.baseline),
        serverFlat: flat(pull.serverSamples),
        serverSamplesMiB: pull.serverSamples.map(mib),
      },
    });
  } finally {
    await loft.stop();
  }
}

await main();
