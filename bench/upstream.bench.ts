// Issue 11: pull-through. A closure of ≥ 300 MB (BENCH_QUICK: ~90 MB) is copied with
// `nix copy --to file://…?compression=xz` signed by an upstream key — what cache.nixos.org
// serves — and served by nginx. Figures, each a median of the ratios of pairs measured side by side
// (one cold pair per run, on a fresh server, and WARM_PAIRS warm pairs):
//   cold: `nix-store -r` into a fresh store through a fresh Loft pulling from that upstream,
//         vs straight from the upstream (goal ≤ 1.3× the time);
//   warm: the same pull from the Loft cache once it holds the paths, vs from a normal Loft
//         cache the paths were pushed to (goal ≤ 1.05×).
// node --import tsx bench/upstream.bench.ts (normally through `npm run bench`).
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { buildBenchPaths, CLIENT_CORE, cpuDelta, cpuTimes, log, MB, median, nixEnv, pinned, primeMemory, round, settle, RUNS, run, tempDir, timed, writeDocSection, writeResult } from './lib/common.ts';
import { hashPart, loftPush } from './lib/nix.ts';
import { startLoft, startNginx, type LoftServer } from './lib/servers.ts';
import { copyToFileCache, generateUpstreamKey } from '../test/helpers/fake-upstream.ts';

const HEADING = '## Upstream pull-through (issue 11)';
const COLD_GOAL = 1.3;
const WARM_GOAL = 1.05;
/**
 * Warm pairs per run. Both sides serve the same NAR rows through the same code, and a single pull
 * varies by ±20 % on this kind of VM: one pair per run would measure that noise, not Loft.
 */
const WARM_PAIRS = 3;

let pulls = 0;
/** BENCH_CPU_PROF=DIR: a V8 CPU profile of the first run's server, in DIR/upstream-server. */
const PROFILE_DIR = process.env.BENCH_CPU_PROF;
/** BENCH_UPSTREAM_DIR=DIR: keep the xz upstream (and its key) in DIR and reuse it next time (the copy takes minutes). */
const KEEP_DIR = process.env.BENCH_UPSTREAM_DIR;

/** The signed xz file:// cache of the paths: made in `dir`, or reused from KEEP_DIR when it already holds it. */
async function upstreamCache(dir: string, paths: string[]): Promise<{ dir: string; publicKey: string }> {
  const keep = KEEP_DIR && path.resolve(KEEP_DIR);
  const made = keep && path.join(keep, 'public-key');
  const holds = (d: string) => paths.every((p) => existsSync(path.join(d, 'upstream', `${hashPart(p)}.narinfo`)));
  if (made && existsSync(made) && holds(keep)) return { dir: path.join(keep, 'upstream'), publicKey: (await readFile(made, 'utf8')).trim() };
  const base = keep ?? dir;
  await mkdir(base, { recursive: true });
  const keys = await generateUpstreamKey(base);
  const { ms } = await timed(() => copyToFileCache(path.join(base, 'upstream'), paths, keys, 'xz'));
  log(`upstream: file:// cache written in ${(ms / 1000).toFixed(0)} s`);
  if (made) await writeFile(made, keys.publicKey);
  return { dir: path.join(base, 'upstream'), publicKey: keys.publicKey };
}

/**
 * `nix-store -r` of the paths into a fresh store from one substituter, on the client core, once
 * the server `quiet` is idle and memory is primed; returns ms.
 */
async function substitute(work: string, url: string, key: string, paths: string[], quiet: number): Promise<number> {
  const n = ++pulls;
  const store = path.join(work, `store-${n}`);
  const [cmd, args] = pinned(CLIENT_CORE, 'nix-store', [
    '--store', store, '-r', ...paths,
    '--option', 'substituters', url,
    '--option', 'trusted-public-keys', key,
    '--option', 'require-sigs', 'true',
  ]);
  await settle(quiet);
  await primeMemory();
  const { ms } = await timed(() => run(cmd, args, { env: nixEnv(path.join(work, `client-${n}`)) }));
  await run('rm', ['-rf', store, path.join(work, `client-${n}`)]);
  return ms;
}

async function configureUpstream(loft: LoftServer, cache: string, upstreamUrl: string, publicKey: string): Promise<string> {
  const res = await fetch(`${loft.url}/_api/v1/cache-config/${cache}`, {
    method: 'PATCH',
    headers: { authorization: `Bearer ${loft.token}`, 'content-type': 'application/json' },
    body: JSON.stringify({ upstreams: [{ url: upstreamUrl, public_keys: [publicKey] }] }),
  });
  if (res.status !== 200) throw new Error(`configuring ${cache}: ${res.status} ${await res.text()}`);
  return ((await res.json()) as { public_key: string }).public_key;
}

async function publicKeyOf(loft: LoftServer, cache: string): Promise<string> {
  return ((await (await fetch(`${loft.url}/_api/v1/cache-config/${cache}`)).json()) as { public_key: string }).public_key;
}

/** The pulled NARs are recorded once ingested (just after their last byte is sent): wait for all. */
async function waitIngested(loft: LoftServer, cache: string, paths: string[]): Promise<void> {
  const deadline = Date.now() + 10 * 60_000;
  for (const p of paths) {
    while (!/^URL: nar\/\S+\.nar\.zst$/m.test(await (await fetch(`${loft.url}/${cache}/${hashPart(p)}.narinfo`)).text())) {
      if (Date.now() > deadline) throw new Error(`${p} was not ingested`);
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }
}

async function main(): Promise<void> {
  const tmp = await tempDir('loft-bench-upstream-');
  const bench = await buildBenchPaths();
  const paths = [bench.big, bench.others[0]];
  const closure = (await run('nix-store', ['-qR', ...paths])).stdout.trim().split('\n');
  const narBytes = (await run('nix-store', ['-q', '--size', ...closure])).stdout.trim().split('\n').reduce((n, s) => n + Number(s), 0);
  log(`upstream: closure of ${closure.length} paths, ${(narBytes / MB).toFixed(0)} MB of NAR`);
  const keys = await upstreamCache(tmp.path, paths);
  const upstream = await startNginx(keys.dir);
  const work = path.join(tmp.path, 'work');
  const cold: Array<{ direct: number; loft: number }> = [];
  const warm: Array<{ plain: number; pulled: number }> = [];
  try {
    for (let r = 0; r < RUNS; r++) {
      // a fresh server: nothing of the closure is in it yet
      const loft = await startLoft({ cpuProfDir: PROFILE_DIR && r === 0 ? path.join(PROFILE_DIR, 'upstream-server') : undefined });
      try {
        await loft.createCache('proxy');
        const loftKey = await configureUpstream(loft, 'proxy', upstream.url, keys.publicKey);
        const direct = async () => substitute(work, upstream.url, keys.publicKey, paths, loft.pid);
        const through = async () => substitute(work, `${loft.url}/proxy`, loftKey, paths, loft.pid);
        let cpu = await cpuTimes(loft.pid);
        const timedThrough = async () => {
          cpu = await cpuTimes(loft.pid);
          return through();
        };
        // The ingest (seconds of CPU on the server core, which nginx shares) ends before the direct
        // pull when Loft goes first: it would slow the anchor.
        const ingested = async () => {
          const { ms } = await timed(() => waitIngested(loft, 'proxy', closure));
          return { ms, used: cpuDelta(cpu, await cpuTimes(loft.pid)) };
        };
        let c: { direct: number; loft: number };
        let ingest: { ms: number; used: ReturnType<typeof cpuDelta> };
        if (r % 2 === 0) {
          const d = await direct();
          c = { direct: d, loft: await timedThrough() };
          ingest = await ingested();
        } else {
          const l = await timedThrough();
          ingest = await ingested();
          c = { loft: l, direct: await direct() };
        }
        cold.push(c);
        const { ms: ingestMs, used } = ingest;
        log(`upstream run ${r + 1}: server CPU during the cold pull and its ingest: main ${used.mainUser + used.mainSys} ms, other threads ${used.otherUser + used.otherSys} ms; ingest done ${ingestMs.toFixed(0)} ms after the pull`);

        await loft.createCache('plain');
        await loftPush(loft, 'plain', paths);
        const plainKey = await publicKeyOf(loft, 'plain');
        const plain = async () => substitute(work, `${loft.url}/plain`, plainKey, paths, loft.pid);
        const pulled = async () => substitute(work, `${loft.url}/proxy`, loftKey, paths, loft.pid);
        const pairs: Array<{ plain: number; pulled: number }> = [];
        for (let p = 0; p < WARM_PAIRS; p++) {
          pairs.push((r + p) % 2 === 0 ? { plain: await plain(), pulled: await pulled() } : { pulled: await pulled(), plain: await plain() });
        }
        warm.push(...pairs);
        const warmText = pairs.map((w) => `${(w.pulled / 1000).toFixed(2)} s vs ${(w.plain / 1000).toFixed(2)} s`).join(', ');
        log(`upstream run ${r + 1}/${RUNS}: cold ${(c.loft / 1000).toFixed(2)} s via Loft vs ${(c.direct / 1000).toFixed(2)} s direct; warm (pulled vs plain) ${warmText}`);
      } finally {
        await loft.stop();
      }
    }
  } finally {
    await upstream.stop();
    await tmp.cleanup();
  }

  const coldRatios = cold.map((c) => round(c.loft / c.direct));
  const warmRatios = warm.map((w) => round(w.pulled / w.plain));
  const result = {
    bench: 'upstream',
    paths: closure.length,
    narBytes,
    runs: RUNS,
    cold: { directMs: median(cold.map((c) => c.direct)), loftMs: median(cold.map((c) => c.loft)), ratio: median(coldRatios), ratios: coldRatios, goal: COLD_GOAL },
    warm: { plainMs: median(warm.map((w) => w.plain)), pulledMs: median(warm.map((w) => w.pulled)), ratio: median(warmRatios), ratios: warmRatios, goal: WARM_GOAL },
  };
  await writeResult('upstream', result);
  console.log(JSON.stringify(result));
  const s = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
  const mark = (ratio: number, goal: number) => (ratio <= goal ? '✅' : '❌');
  await writeDocSection(
    HEADING,
    [
      HEADING,
      '',
      '`node --import tsx bench/upstream.bench.ts` (also in `npm run bench`): a closure copied with',
      '`nix copy --to file://…?compression=xz` and signed with an upstream key (what cache.nixos.org serves), served by',
      'nginx. `nix-store -r` substitutes it into a fresh store with `require-sigs`, on the client core; Loft (`npm start`',
      'defaults, SQLite, local storage, a fresh server per run) runs on the server core with nginx. Cold: through a Loft',
      'cache whose upstream is that nginx, vs straight from nginx. Warm: from that Loft cache once it holds the paths, vs',
      'from a normal Loft cache the same paths were pushed to (`loft push`). Each figure is the median of the ratios of',
      `pairs measured side by side, in alternating order: one cold pair per run (a fresh server) and ${WARM_PAIRS} warm pairs. Every`,
      'timed pull starts once the server has been idle for 0.5 s and right after 2 GB of memory is written and freed',
      '(`settle` and `primeMemory` in bench/lib/common.ts: see below).',
      '',
      `Closure: ${closure.length} paths, ${(narBytes / MB).toFixed(0)} MB of NAR. Runs: ${RUNS}. Date: ${new Date().toISOString().slice(0, 10)}.` +
        (process.env.BENCH_QUICK === '1' ? ' **BENCH_QUICK run: small sizes, indicative only.**' : ''),
      '',
      '| pull | anchor | through Loft | Loft / anchor | goal | ratios of the pairs |',
      '|---|---|---|---|---|---|',
      `| cold (Loft fetches from the upstream) | ${s(result.cold.directMs)} straight from the upstream | ${s(result.cold.loftMs)} | **${result.cold.ratio}×** | ≤ ${COLD_GOAL}× ${mark(result.cold.ratio, COLD_GOAL)} | ${coldRatios.join(', ')} |`,
      `| warm (Loft holds the paths) | ${s(result.warm.plainMs)} from a normal Loft cache | ${s(result.warm.pulledMs)} | **${result.warm.ratio}×** | ≤ ${WARM_GOAL}× ${mark(result.warm.ratio, WARM_GOAL)} | ${warmRatios.join(', ')} |`,
      '',
    ].join('\n'),
  );
}

await main();
