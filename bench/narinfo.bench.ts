// Issue 7, bench 1: narinfo lookups, Loft vs nginx serving the same cache as static files.
// node --import tsx bench/narinfo.bench.ts (normally through `npm run bench`).
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { log, median, QUICK, round, RUNS, run, tempDir, writeResult, nixEnv, REPO } from './lib/common.ts';
import { hashPart, nixCopyToFile, nixCopyToLoft, randomPathHash } from './lib/nix.ts';
import { startLoft, startNginx } from './lib/servers.ts';
import { wrk, type WrkResult } from './lib/wrk.ts';

const CONNECTIONS = [1, 16, 64];
const SECONDS = QUICK ? 2 : 5;
const MISSES = 1000;

export interface NarinfoRow {
  kind: 'hit' | 'miss';
  connections: number;
  nginx: { rps: number; p50Ms: number; p99Ms: number };
  loft: { rps: number; p50Ms: number; p99Ms: number };
  /** Median over runs of loft rps / nginx rps of the same run. */
  ratio: number;
  ratios: number[];
  loftRuns: WrkResult[];
  nginxRuns: WrkResult[];
}

async function main(): Promise<void> {
  const tmp = await tempDir('loft-bench-narinfo-');
  // The test corpus (every path shape, ~15 small paths), under a salt of its own.
  const corpus = path.join(REPO, 'test/fixtures/corpus.nix');
  const built = (
    await run('nix-build', ['--no-out-link', corpus, '-A', 'all', '-A', 'big', '-A', 'leaf', '--argstr', 'salt', 'bench-narinfo', '--arg', 'bigMiB', '1'], {
      env: nixEnv(tmp.path),
    })
  ).stdout
    .trim()
    .split('\n');
  const closure = (await run('nix-store', ['-qR', ...built])).stdout.trim().split('\n');
  log(`narinfo: ${closure.length} store paths`);

  const fileCache = path.join(tmp.path, 'file-cache');
  await nixCopyToFile(fileCache, closure, tmp.path);
  const loft = await startLoft();
  const nginx = await startNginx(fileCache);
  try {
    await loft.createCache('bench');
    await nixCopyToLoft(loft, 'bench', closure, tmp.path);

    const lists: Record<string, { nginx: string; loft: string }> = {};
    const misses = Array.from({ length: MISSES }, randomPathHash);
    for (const [kind, hashes] of [
      ['hit', closure.map(hashPart)],
      ['miss', misses],
    ] as const) {
      const n = path.join(tmp.path, `${kind}-nginx.txt`);
      const l = path.join(tmp.path, `${kind}-loft.txt`);
      await writeFile(n, hashes.map((h) => `/${h}.narinfo`).join('\n'));
      await writeFile(l, hashes.map((h) => `/bench/${h}.narinfo`).join('\n'));
      lists[kind] = { nginx: n, loft: l };
    }
    // Both must answer the same way before anything is measured.
    for (const h of closure.map(hashPart)) {
      const a = await fetch(`${nginx.url}/${h}.narinfo`);
      const b = await fetch(`${loft.url}/bench/${h}.narinfo`);
      await a.text();
      await b.text();
      if (a.status !== 200 || b.status !== 200) throw new Error(`narinfo ${h}: nginx ${a.status}, loft ${b.status}`);
    }
    // Warm-up (JIT, SQLite page cache, nginx open-file paths).
    await wrk(nginx.url, lists.hit.nginx, 16, 1);
    await wrk(loft.url, lists.hit.loft, 16, 1);
    await wrk(loft.url, lists.miss.loft, 16, 1);

    const rows: NarinfoRow[] = [];
    for (const kind of ['hit', 'miss'] as const) {
      for (const c of CONNECTIONS) {
        const nginxRuns: WrkResult[] = [];
        const loftRuns: WrkResult[] = [];
        for (let r = 0; r < RUNS; r++) {
          // Alternate who goes first, so a burst of noise does not always land on the same server.
          const first = r % 2 === 0;
          if (first) nginxRuns.push(await wrk(nginx.url, lists[kind].nginx, c, SECONDS));
          loftRuns.push(await wrk(loft.url, lists[kind].loft, c, SECONDS));
          if (!first) nginxRuns.push(await wrk(nginx.url, lists[kind].nginx, c, SECONDS));
        }
        const expectNon2xx = kind === 'miss';
        for (const w of [...nginxRuns, ...loftRuns]) {
          if (w.socketErrors > 0) log(`warning: ${w.socketErrors} socket errors (${kind}, c=${c})`);
          if (expectNon2xx ? w.non2xx !== w.requests : w.non2xx !== 0) {
            throw new Error(`narinfo ${kind} c=${c}: ${w.non2xx} of ${w.requests} responses were not 2xx`);
          }
        }
        const ratios = loftRuns.map((l, i) => l.rps / nginxRuns[i].rps);
        const summary = (runs: WrkResult[]) => ({
          rps: Math.round(median(runs.map((w) => w.rps))),
          p50Ms: round(median(runs.map((w) => w.p50Ms)), 3),
          p99Ms: round(median(runs.map((w) => w.p99Ms)), 3),
        });
        const row: NarinfoRow = {
          kind,
          connections: c,
          nginx: summary(nginxRuns),
          loft: summary(loftRuns),
          ratio: round(median(ratios), 3),
          ratios: ratios.map((x) => round(x, 3)),
          loftRuns,
          nginxRuns,
        };
        log(`narinfo ${kind} c=${c}: nginx ${row.nginx.rps}/s p99 ${row.nginx.p99Ms} ms, loft ${row.loft.rps}/s p99 ${row.loft.p99Ms} ms, ratio ${row.ratio}`);
        rows.push(row);
      }
    }
    await writeResult('narinfo', { paths: closure.length, misses: MISSES, seconds: SECONDS, runs: RUNS, nonce: randomBytes(4).toString('hex'), rows });
  } finally {
    await nginx.stop();
    await loft.stop();
    await tmp.cleanup();
  }
}

await main();
