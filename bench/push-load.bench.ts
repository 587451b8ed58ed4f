// Issue 10: does a push block the event loop? narinfo lookups at a steady 200 req/s (open loop:
// a request every 5 ms whatever the answers) and /v1/healthz every 250 ms, first on the idle server,
// then while `loft push` sends the push set (≥ 300 MB) to the same server, with the server's own
// event-loop delay (its /metrics) beside the latencies the load generator saw. Then the storage
// objects (pack files) the push left, per GiB stored.
// node --import tsx bench/push-load.bench.ts (normally through `npm run bench`).
import { readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { buildBenchPaths, cpuDelta, cpuTimes, log, QUICK, round, writeResult } from './lib/common.ts';
import { hashPart, loftPush } from './lib/nix.ts';
import { startLoft, type LoftServer } from './lib/servers.ts';

const RATE = 200;
const HEALTH_EVERY_MS = 250;
const IDLE_SECONDS = QUICK ? 3 : 10;

interface Latencies {
  requests: number;
  rps: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  errors: number;
  healthMaxMs: number;
}

function percentile(sorted: number[], q: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

/** Fires narinfo GETs at RATE/s and healthz probes until `until` settles; returns the latencies. */
async function load(loft: LoftServer, hashes: string[], until: Promise<unknown>): Promise<Latencies> {
  const narinfo: number[] = [];
  const health: number[] = [];
  let errors = 0;
  const inFlight = new Set<Promise<void>>();
  const timed = (url: string, into: number[]) => {
    const t0 = performance.now();
    const p = fetch(url)
      .then(async (res) => {
        await res.arrayBuffer();
        if (res.status !== 200) errors++;
      })
      .catch(() => void errors++)
      .finally(() => {
        into.push(performance.now() - t0);
        inFlight.delete(p);
      });
    inFlight.add(p);
  };
  let done = false;
  void until.finally(() => (done = true));
  const started = performance.now();
  let sent = 0;
  let lastHealth = 0;
  while (!done) {
    const now = performance.now() - started;
    // Open loop: catch up to the schedule, so a stalled server sees the backlog it would in production.
    while (sent < (now / 1000) * RATE) timed(`${loft.url}/bench/${hashes[sent++ % hashes.length]}.narinfo`, narinfo);
    if (now - lastHealth >= HEALTH_EVERY_MS) {
      lastHealth = now;
      timed(`${loft.url}/v1/healthz`, health);
    }
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
  await Promise.all(inFlight);
  const seconds = (performance.now() - started) / 1000;
  narinfo.sort((a, b) => a - b);
  return {
    requests: narinfo.length,
    rps: round(narinfo.length / seconds, 0),
    p50Ms: round(percentile(narinfo, 0.5)),
    p99Ms: round(percentile(narinfo, 0.99)),
    maxMs: round(narinfo[narinfo.length - 1] ?? NaN),
    errors,
    healthMaxMs: round(Math.max(...health)),
  };
}

/**
 * The server's own event-loop delay since the previous call (prom-client's monitorEventLoopDelay
 * histogram, reset at each scrape): what the event loop did, apart from the load generator's core.
 */
async function eventLoopLag(loft: LoftServer): Promise<{ p99Ms: number; maxMs: number }> {
  const text = await (await fetch(`${loft.url}/metrics`)).text();
  const value = (name: string) => Number(new RegExp(`^loft_nodejs_eventloop_lag_${name}_seconds (\\S+)$`, 'm').exec(text)?.[1] ?? NaN) * 1000;
  return { p99Ms: round(value('p99')), maxMs: round(value('max')) };
}

async function filesUnder(dir: string): Promise<{ files: number; bytes: number }> {
  let files = 0;
  let bytes = 0;
  for (const e of await readdir(dir, { recursive: true, withFileTypes: true })) {
    if (!e.isFile() || e.name.startsWith('.tmp-')) continue;
    files++;
    bytes += (await stat(path.join(e.parentPath, e.name))).size;
  }
  return { files, bytes };
}

async function main(): Promise<void> {
  const paths = await buildBenchPaths();
  const set = [paths.big, ...paths.others];
  const loft = await startLoft();
  try {
    await loft.createCache('bench');
    // Something to look up: the edited big path, pushed first (its narinfo is a hit throughout).
    await loftPush(loft, 'bench', [paths.bigEdited]);
    const hashes = [hashPart(paths.bigEdited)];
    log(`push-load: idle, ${IDLE_SECONDS} s at ${RATE} req/s`);
    await eventLoopLag(loft);
    const idle = { ...(await load(loft, hashes, new Promise((resolve) => setTimeout(resolve, IDLE_SECONDS * 1000)))), eventLoop: await eventLoopLag(loft) };
    log(`push-load: during a push of ${set.length} paths`);
    const c0 = await cpuTimes(loft.pid);
    const pushing = loftPush(loft, 'bench', set);
    const busy = { ...(await load(loft, hashes, pushing)), eventLoop: await eventLoopLag(loft) };
    const pushed = await pushing;
    const cpu = cpuDelta(c0, await cpuTimes(loft.pid));
    const stored = await filesUnder(path.join(loft.dataDir, 'storage'));
    const result = {
      rate: RATE,
      paths: set.length,
      narBytes: pushed.summary.nar_bytes,
      pushMs: pushed.ms,
      idle,
      busy,
      serverCpu: cpu,
      objects: stored.files,
      storedBytes: stored.bytes,
      objectsPerGiB: round(stored.files / (stored.bytes / 2 ** 30), 1),
    };
    log(`push-load: ${JSON.stringify(result)}`);
    await writeResult('push-load', result);
  } finally {
    await loft.stop();
  }
}

await main();
