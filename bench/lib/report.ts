// Assembles docs/benchmarks.md from the JSON results of the issue-7 benches (BENCH_OUT), keeping
// the "Chunk dedup (issue 4)" section that bench/dedup.bench.ts maintains.
//   node --import tsx bench/lib/report.ts
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { machine, MB, OUT_DIR, QUICK, readResult, REPO, RUNS } from './common.ts';

const DOC = path.join(REPO, 'docs/benchmarks.md');
const DEDUP_HEADING = '## Chunk dedup (issue 4)';

type Json = any; // eslint-disable-line @typescript-eslint/no-explicit-any

const ok = (met: boolean | undefined) => (met === undefined ? '–' : met ? '✅ met' : '❌ not met');
const n0 = (x: number) => Math.round(x).toLocaleString('en-US');
const f = (x: number, d = 2) => (Number.isFinite(x) ? x.toFixed(d) : '–');
const mb = (b: number, d = 1) => `${(b / MB).toFixed(d)} MB`;
const s = (ms: number) => `${(ms / 1000).toFixed(2)} s`;

async function loadavg(name: string): Promise<string> {
  try {
    return (await readFile(path.join(OUT_DIR, `${name}.loadavg`), 'utf8')).split(' ').slice(0, 3).join(' ');
  } catch {
    return '?';
  }
}

interface Goal {
  n: string;
  goal: string;
  measured: string;
  met: boolean | undefined;
}

async function main(): Promise<void> {
  const m = machine();
  const narinfo = await readResult<Json>('narinfo');
  const download = await readResult<Json>('nar-download');
  const push = await readResult<Json>('push');
  const memory = await readResult<Json>('memory');
  const missing = await readResult<Json>('missing-paths');
  const pushLoad = await readResult<Json>('push-load');
  const gcScale = await readResult<Json>('gc-scale');
  const goals: Goal[] = [];
  const out: string[] = [];
  const p = (...lines: string[]) => out.push(...lines);

  // 1. narinfo
  const sec1: string[] = [];
  if (narinfo) {
    sec1.push(
      '| lookup | connections | nginx req/s | Loft req/s | Loft / nginx (median of per-run ratios) | nginx p50 / p99 | Loft p50 / p99 | per-run ratios |',
      '|---|---|---|---|---|---|---|---|',
    );
    for (const r of narinfo.rows) {
      sec1.push(
        `| ${r.kind} | ${r.connections} | ${n0(r.nginx.rps)} | ${n0(r.loft.rps)} | **${f(r.ratio)}×** ${r.ratio >= 0.5 ? '✅' : '❌'} | ` +
          `${f(r.nginx.p50Ms)} / ${f(r.nginx.p99Ms)} ms | ${f(r.loft.p50Ms)} / ${f(r.loft.p99Ms)} ms ${r.connections === 64 ? (r.loft.p99Ms < 5 ? '✅' : '❌') : ''} | ${r.ratios.map((x: number) => f(x)).join(', ')} |`,
      );
    }
    for (const kind of ['hit', 'miss']) {
      const rows = narinfo.rows.filter((r: Json) => r.kind === kind);
      const worst = Math.min(...rows.map((r: Json) => r.ratio));
      goals.push({ n: '1', goal: `narinfo ${kind === 'hit' ? 'hits' : 'misses'}: Loft ≥ 0.5× nginx req/s (1, 16, 64 connections)`, measured: rows.map((r: Json) => `${f(r.ratio)}×`).join(' / '), met: worst >= 0.5 });
      const r64 = rows.find((r: Json) => r.connections === 64);
      if (r64) goals.push({ n: '1', goal: `narinfo ${kind === 'hit' ? 'hits' : 'misses'}: Loft p99 < 5 ms at 64 connections`, measured: `${f(r64.loft.p99Ms)} ms (nginx ${f(r64.nginx.p99Ms)} ms)`, met: r64.loft.p99Ms < 5 });
    }
  }

  // 2. download
  const sec2: string[] = [];
  if (download) {
    sec2.push(
      '| variant | NAR | nginx serves | nginx MB/s | Loft serves | Loft MB/s | Loft / nginx (NAR throughput) | goal | per-run ratios |',
      '|---|---|---|---|---|---|---|---|---|',
    );
    for (const r of download.rows) {
      const zst = r.variant === 'zst';
      sec2.push(
        `| ${zst ? 'single-object: compressed `.nar.zst`' : 'chunked: decompressed `.nar`'} | ${mb(r.narBytes, 0)} | ` +
          `${zst ? 'Nix\'s `.nar.zst` file' : 'the `.nar` file (compression=none)'}, ${mb(r.nginxBytes, 0)} | ${n0(r.nginxMBs)} | ` +
          `${zst ? 'its chunks\' zstd frames' : 'its chunks, decompressed and verified'}, ${mb(r.loftBytes, 0)} | ${n0(r.loftMBs)} | **${f(r.ratio)}×** | ≥ ${r.goal}× ${r.ratio >= r.goal ? '✅' : '❌'} | ${r.ratios.map((x: number) => f(x)).join(', ')} |`,
      );
      goals.push({ n: '2', goal: `NAR download, ${zst ? 'single-object (.nar.zst)' : 'chunked (.nar)'}: Loft ≥ ${r.goal}× nginx`, measured: `${f(r.ratio)}× (${n0(r.loftMBs)} vs ${n0(r.nginxMBs)} MB/s)`, met: r.ratio >= r.goal });
    }
  }

  // 3. push
  const sec3: string[] = [];
  if (push) {
    sec3.push(
      '| phase | method | wall time | bytes sent (written for file://) | file:// time / this time | Loft server CPU: main thread user+sys / other threads user+sys (share of its core) |',
      '|---|---|---|---|---|---|',
    );
    for (const ph of push.phases) {
      const label = ph.phase === 'initial' ? `initial, ${push.paths.length} paths, ${mb(push.narBytes, 0)} of NAR` : `after a small edit to the largest path (new NAR ${mb(push.editedNarBytes, 0)})`;
      const cpu = (x: Json) =>
        x.serverCpu ? `${s(x.serverCpu.mainUser)} + ${s(x.serverCpu.mainSys)} / ${s(x.serverCpu.otherUser)} + ${s(x.serverCpu.otherSys)} (${Math.round(x.serverCoreShare * 100)} %)` : '–';
      sec3.push(`| ${label} | \`nix copy --to file://…?compression=zstd\` (floor) | ${s(ph.file.ms)} | ${mb(ph.file.bytes)} | 1 | – |`);
      sec3.push(`| | \`nix copy --to http://loft/…?compression=zstd\` | ${s(ph.nixHttp.ms)} | ${mb(ph.nixHttp.bytes)} | ${f(ph.nixHttpVsFile.ratio)}× | ${cpu(ph.nixHttp)} |`);
      sec3.push(
        `| | \`loft push\` (Loft's client) | ${s(ph.loftClient.ms)} | ${mb(ph.loftClient.bytes, 2)} | **${f(ph.loftVsFile.ratio)}×** ${ph.loftVsFile.ratio > 1 ? '✅' : '❌'} (runs: ${ph.loftVsFile.ratios.map((x: number) => f(x)).join(', ')}) | ${cpu(ph.loftClient)} |`,
      );
      goals.push({
        n: '3',
        goal: `push ${ph.phase === 'initial' ? '≥ 500 MB' : 'after a small edit'}: \`loft push\` faster than \`nix copy\` to a local file cache`,
        measured: `${s(ph.loftClient.ms)} vs ${s(ph.file.ms)} (${f(ph.loftVsFile.ratio)}×)`,
        met: ph.loftVsFile.ratio > 1,
      });
      if (ph.phase === 'initial') {
        goals.push({
          n: '3',
          goal: `issue 10: push of ${mb(push.narBytes, 0)} in ${push.paths.length} paths: \`nix copy --to http://loft\` within 1.5× of \`nix copy --to file://\``,
          measured: `${s(ph.nixHttp.ms)} vs ${s(ph.file.ms)} (${f(ph.nixHttp.ms / ph.file.ms)}× the file:// time)`,
          met: ph.nixHttp.ms <= 1.5 * ph.file.ms,
        });
      }
    }
  }

  // 4. memory
  const sec4: string[] = [];
  if (memory) {
    const LIMIT = 200 * 1e6;
    const MiBv = (x: number) => x * 1024 * 1024;
    sec4.push(
      `NAR: ${mb(memory.narBytes, 0)} generated on the fly (one regular file, 60 % keystream, 40 % hex text). Server idle RSS: ${memory.serverIdleRssMiB} MiB.`,
      '',
      '| transfer | time (NAR MB/s) | server RSS at start → peak (VmHWM) | server RSS flat? | client peak RSS (VmHWM) |',
      '|---|---|---|---|---|',
    );
    for (const [name, ph] of [['push (pushNar, chunk protocol)', memory.push], ['pull (GET `.nar`, streamed)', memory.pull]] as const) {
      const serverOk = MiBv(ph.serverPeakMiB) < LIMIT;
      const clientOk = MiBv(ph.clientPeakMiB) < LIMIT;
      sec4.push(
        `| ${name} | ${s(ph.ms)} (${f(ph.mbPerS, 0)}) | ${ph.serverSamplesMiB[0]} → ${ph.serverPeakMiB} MiB ${serverOk ? '✅' : '❌'} | ${ph.serverFlat ? 'yes' : 'no'} | ${ph.clientPeakMiB} MiB ${clientOk ? '✅' : '❌'} (baseline ${ph.clientBaselineMiB} MiB) |`,
      );
      const tag = name.split(' ')[0];
      goals.push({ n: '4', goal: `${tag} ${mb(memory.narBytes, 0)}: server peak RSS flat and < 200 MB`, measured: `${ph.serverPeakMiB} MiB (${f((MiBv(ph.serverPeakMiB)) / 1e6, 0)} MB), flat: ${ph.serverFlat ? 'yes' : 'no'}`, met: serverOk && ph.serverFlat });
      goals.push({ n: '4', goal: `${tag} ${mb(memory.narBytes, 0)}: client peak RSS < 200 MB`, measured: `${ph.clientPeakMiB} MiB (${f((MiBv(ph.clientPeakMiB)) / 1e6, 0)} MB)`, met: clientOk });
    }
    sec4.push(
      '',
      'The pull runs on the same server right after the push, so its starting RSS is what the push left (Node does not',
      'return the heap to the system); its own growth is the difference.',
    );
    sec4.push('', `Server RSS samples every 0.5 s (MiB) — push: ${memory.push.serverSamplesMiB.join(' ')}; pull: ${memory.pull.serverSamplesMiB.join(' ')}.`);
  }

  // 5. missing paths
  const sec5: string[] = [];
  if (missing) {
    sec5.push('| database | median of ' + missing.repeats + ' requests | all requests (ms) | goal < 200 ms |', '|---|---|---|---|');
    for (const r of missing.results) {
      if (r.skipped) {
        sec5.push(`| ${r.db} | skipped: ${r.skipped} | | – |`);
        goals.push({ n: '5', goal: `missing-paths, ${n0(missing.query)} hashes, ${r.db}: < 200 ms`, measured: `skipped (${r.skipped})`, met: undefined });
        continue;
      }
      sec5.push(`| ${r.db} | ${f(r.medianMs, 0)} ms | ${r.runsMs.map((x: number) => f(x, 0)).join(', ')} | ${r.medianMs < 200 ? '✅' : '❌'} |`);
      goals.push({ n: '5', goal: `missing-paths, ${n0(missing.query)} hashes, ${r.db}: < 200 ms`, measured: `${f(r.medianMs, 0)} ms`, met: r.medianMs < 200 });
    }
  }

  // 6. push load (issue 10)
  const sec6: string[] = [];
  if (pushLoad) {
    const row = (label: string, l: Json) =>
      `| ${label} | ${n0(l.requests)} (${n0(l.rps)}/s) | ${f(l.p50Ms)} / ${f(l.p99Ms)} / ${f(l.maxMs)} ms | ${l.errors} | ${f(l.healthMaxMs, 0)} ms | ${f(l.eventLoop?.p99Ms)} / ${f(l.eventLoop?.maxMs)} ms |`;
    sec6.push(
      `Push: \`loft push\` of ${pushLoad.paths} paths, ${mb(pushLoad.narBytes, 0)} of NAR, in ${s(pushLoad.pushMs)}; Loft server CPU during it: main thread ` +
        `${s(pushLoad.serverCpu.mainUser + pushLoad.serverCpu.mainSys)}, other threads (chunk workers, libuv) ${s(pushLoad.serverCpu.otherUser + pushLoad.serverCpu.otherSys)}.`,
      '',
      '| server | narinfo requests | narinfo p50 / p99 / max | errors | /v1/healthz max | server event-loop delay p99 / max |',
      '|---|---|---|---|---|---|',
      row('idle', pushLoad.idle),
      row('during the push', pushLoad.busy),
      '',
      `Storage after the push: ${n0(pushLoad.objects)} objects for ${mb(pushLoad.storedBytes)} stored: **${f(pushLoad.objectsPerGiB, 1)} objects per GiB** ${pushLoad.objectsPerGiB <= 64 ? '✅' : '❌'}.`,
    );
    goals.push({ n: '6', goal: `narinfo at ${pushLoad.rate} req/s during a ${mb(pushLoad.narBytes, 0)} push: p99 < 10 ms, max < 100 ms`, measured: `p99 ${f(pushLoad.busy.p99Ms)} ms, max ${f(pushLoad.busy.maxMs)} ms (idle ${f(pushLoad.idle.p99Ms)} / ${f(pushLoad.idle.maxMs)} ms)`, met: pushLoad.busy.p99Ms < 10 && pushLoad.busy.maxMs < 100 });
    goals.push({ n: '6', goal: '/v1/healthz during that push: never slower than 1 s', measured: `max ${f(pushLoad.busy.healthMaxMs, 0)} ms`, met: pushLoad.busy.healthMaxMs < 1000 });
    goals.push({ n: '6', goal: 'storage objects per GiB stored ≤ 64', measured: `${f(pushLoad.objectsPerGiB, 1)}`, met: pushLoad.objectsPerGiB <= 64 });
  }

  // 7. garbage collection at scale (issue 12)
  const sec7: string[] = [];
  if (gcScale) {
    sec7.push(
      '| database | references | fill | GC pass | peak RSS of the server (before the pass) | paths / NARs freed | narinfo median, big / 1,000-path cache | ratio (goal ≤ 1.2) | p99 big / small |',
      '|---|---|---|---|---|---|---|---|---|',
    );
    for (const r of gcScale.results) {
      const what = `${n0(gcScale.paths)} paths, ${r.db}`;
      if (r.skipped) {
        sec7.push(`| ${r.db} | skipped: ${r.skipped} | | | | | | | |`);
        goals.push({ n: '12', goal: `GC pass, ${what}: < 10 min, < 300 MB`, measured: `skipped (${r.skipped})`, met: undefined });
        continue;
      }
      sec7.push(
        `| ${r.db} | ${n0(r.references)} | ${f(r.fillSeconds, 0)} s | ${f(r.gcSeconds, 1)} s | ${f(r.gcPeakRssMB, 0)} MB (${f(r.rssBeforeMB, 0)} MB) | ${n0(r.collected)} / ${n0(r.narsFreed)} | ` +
          `${f(r.narinfoMedianMs.big, 2)} / ${f(r.narinfoMedianMs.small, 2)} ms | ${f(r.narinfoRatio)}× ${r.narinfoRatio <= 1.2 ? '✅' : '❌'} | ${f(r.narinfoP99Ms.big, 2)} / ${f(r.narinfoP99Ms.small, 2)} ms |`,
      );
      goals.push({ n: '12', goal: `GC pass, ${what}: < 10 min, < 300 MB`, measured: `${f(r.gcSeconds, 1)} s, ${f(r.gcPeakRssMB, 0)} MB`, met: r.gcSeconds < 600 && r.gcPeakRssMB < 300 });
      goals.push({ n: '12', goal: `narinfo at ${what}: ≤ 1.2× a 1,000-path cache`, measured: `${f(r.narinfoRatio)}×`, met: r.narinfoRatio <= 1.2 });
    }
  }

  const existing = await readFile(DOC, 'utf8').catch(() => '');
  const dedupAt = existing.indexOf(DEDUP_HEADING);
  const dedup = dedupAt >= 0 ? existing.slice(dedupAt).trimEnd() : `${DEDUP_HEADING}\n\nNot run yet: \`node --import tsx bench/dedup.bench.ts\`.`;

  p(
    '# Benchmarks',
    '',
    'Generated by `npm run bench` (`bench/run.sh`; not part of `npm test`): it builds, checks or installs nginx,',
    'wrk, curl and taskset, runs `bench/*.bench.ts` and writes this file. `BENCH_QUICK=1` shrinks every size for a',
    'smoke run; `BENCH_RUNS=N` sets the runs per figure; `BENCH_CPU_PROF=DIR` also profiles the server. 1 MB = 10⁶ B.',
    '',
    '## Loft against nginx and Nix (issue 7)',
    '',
    `Machine: ${m.cpu}, ${m.cores} vCPU, ${m.memGiB} GiB, Node ${m.node}, ${m.nginx}, ${m.wrk}, ${m.nix}.`,
    `Date: ${m.date}. Commit: ${m.commit}.${QUICK ? ' **BENCH_QUICK=1: reduced sizes, not the real figures.**' : ''}`,
    `Load average (1/5/15 min) when each bench started — the machine is shared, so read the ratios, not the absolute figures: ` +
      `narinfo ${await loadavg('narinfo')}; download ${await loadavg('nar-download')}; push ${await loadavg('push')}; memory ${await loadavg('memory')}; missing paths ${await loadavg('missing-paths')}; push load ${await loadavg('push-load')}; gc-scale ${await loadavg('gc-scale')}.`,
    '',
    '**Method.** Every server is one process pinned to core 0 with `taskset` (Loft: `node dist/src/bin/loft.js serve` from a',
    'private `tsc` build of the same sources in the results directory, so concurrent rebuilds of the repo cannot interfere;',
    'SQLite, local storage, log level warn, its chunk worker thread on the same core; nginx: Debian\'s, one worker,',
    'sendfile, access log off, keep-alive never closed by count). Load generators and clients (wrk -t1, curl, nix,',
    '`loft push`) are pinned to core 1. Loopback only; every run is time- or size-bounded. Each figure is the median',
    `of ${push?.runs ?? RUNS} runs; each ratio is computed per pair of runs made back to back (the order alternates) and the`,
    'median of those ratios is reported, so slow phases of the shared machine hit both sides of a ratio.',
    '',
    '### Goals',
    '',
    '| # | goal | measured | status |',
    '|---|---|---|---|',
    ...goals.map((g) => `| ${g.n} | ${g.goal} | ${g.measured} | ${ok(g.met)} |`),
    '',
    '### 1. narinfo lookups',
    '',
    `\`bench/narinfo.bench.ts\`: the closure of \`test/fixtures/corpus.nix\` (${narinfo?.paths ?? '?'} paths) is copied with`,
    '`nix copy --to file://…?compression=zstd` (served by nginx as static files) and with `nix copy --to http://loft/bench`',
    `(a public cache). wrk (\`-t1 --latency\`, Lua script \`bench/lib/wrk-paths.lua\` cycling through the paths) runs ${narinfo?.seconds ?? '?'} s per`,
    `figure on keep-alive connections. Hits: the narinfos of those paths (200); misses: ${narinfo?.misses ?? '?'} random hashes (404).`,
    'At 64 connections the mean latency is 64 / throughput (Little\'s law), so p99 < 5 ms needs well over 13,000 req/s',
    'on the server\'s one core: the latency goal depends on the throughput one (bottleneck 2 below).',
    '',
    ...(sec1.length ? sec1 : ['Not run.']),
    '',
    '### 2. NAR download',
    '',
    '`bench/nar-download.bench.ts`, one large store path built by `bench/lib/paths.nix` (60 % AES-CTR keystream, 40 %',
    '`seq` text), fetched by `curl` on one connection, body discarded. **Interpretation:** Loft stores every NAR as',
    'content-defined chunks (64 KiB average), so a ≥ 200 MB "single-object" NAR does not exist in Loft. *Single-object*',
    'compares nginx sending Nix\'s own `.nar.zst` file (one file, sendfile) with Loft sending the same NAR as',
    '`GET nar/<filehash>.nar.zst`: its chunks\' stored zstd frames, read and hash-checked one by one and concatenated',
    '(no recompression). *Chunked* compares nginx sending the uncompressed `.nar` (`nix copy` with `compression=none`)',
    'with Loft\'s `GET nar/<narhash>.nar`: every chunk read, decompressed and verified against its SHA-256. The two',
    '`.nar.zst` files differ in size (Nix compresses the whole NAR, Loft each chunk), so the ratio is taken on time for',
    'the same NAR (nginx seconds / Loft seconds), i.e. NAR bytes delivered per second; the MB/s columns are wire bytes.',
    '',
    ...(sec2.length ? sec2 : ['Not run.']),
    '',
    '### 3. Push',
    '',
    `\`bench/push.bench.ts\`: ${push ? push.paths.length : '?'} store paths from \`bench/lib/paths.nix\` (${push ? mb(push.narBytes, 0) : '?'} of NAR), then the`,
    'largest path rebuilt with one line inserted in the middle of its text file (a new store path, same content',
    'otherwise). Each method starts from an empty target (fresh directory, fresh Loft server with SQLite) and pushes',
    'the set, then the edited path. Bytes: `nix copy --to file://` — bytes written under the cache directory;',
    '`nix copy --to http://` — the `.nar.zst` bodies it PUTs (their FileSize; narinfos are a few hundred bytes);',
    '`loft push` — `bytes_sent` of its `--json` summary (chunk-upload bodies: zstd frames plus record headers).',
    '',
    ...(sec3.length ? sec3 : ['Not run.']),
    '',
    '### 4. Memory',
    '',
    '`bench/memory.bench.ts`: a client process (`bench/lib/memory-client.ts`, compiled; core 1) pushes a generated NAR with',
    '`pushNar` from `src/client/push-nar.ts`, then a second one pulls it with a streaming `GET nar/<narhash>.nar`',
    '(hashed, discarded). Peak RSS is `VmHWM` from `/proc/PID/status`, reset (`/proc/PID/clear_refs` ← 5) before each',
    'transfer, for the server and for the client process. "Flat": the server RSS in the second half of the transfer',
    'stays within 15 % + 16 MiB of the first half\'s maximum.',
    '',
    ...(sec4.length ? sec4 : ['Not run.']),
    '',
    '### 5. Missing-paths query',
    '',
    `\`bench/missing-paths.bench.ts\`: ${n0(missing?.objects ?? 50000)} objects inserted through Loft\'s Kysely schema into a fresh database, then`,
    `\`POST /_api/v1/get-missing-paths\` with ${n0(missing?.query ?? 50000)} hashes, half of them present, timed from the client (JSON encoding`,
    'and transfer included) after one warm-up request. PostgreSQL is the machine\'s shared cluster (not pinned).',
    '',
    ...(sec5.length ? sec5 : ['Not run.']),
    '',
    '### 6. Event loop and storage objects during a push (issue 10)',
    '',
    '`bench/push-load.bench.ts`: narinfo GETs at a steady 200 req/s (open loop: one every 5 ms whatever the answers, so a',
    'blocked event loop shows up as latency, not as fewer requests) and `GET /v1/healthz` every 250 ms, from Node\'s fetch on',
    'core 1; first on the idle server, then while `loft push` sends the push set of bench 3 to the same server. With two',
    'cores the load generator shares core 1 with the `loft push` client, so its latencies include its own scheduling',
    'delay; the server\'s event-loop delay (`loft_nodejs_eventloop_lag_*` from its `/metrics`, reset before each phase)',
    'is measured inside the server.',
    'Afterwards the files under the storage folder (pack files) are counted against the bytes they hold.',
    '',
    ...(sec6.length ? sec6 : ['Not run.']),
    '',
    '### 7. Garbage collection at scale (issue 12)',
    '',
    `\`bench/gc-scale.bench.ts\`: one cache of ${n0(gcScale?.paths ?? 1_000_000)} synthetic paths written into a fresh database the way Loft writes them`,
    '(objects with their JSON references and object_refs rows, one NAR row each; no chunk data), each referring to about 6',
    'others (half among the 1 % most depended on, half among recent neighbours); of the older 40 % of pushes 90 % were last',
    'used long before the 30-day retention, of the rest 10 %. One `POST /_api/v1/gc` of that cache is timed, with the server\'s peak RSS (VmHWM,',
    `reset before the pass). narinfo latency: ${n0(gcScale?.lookups ?? 3000)} sequential lookups of distinct random paths in the big cache,`,
    'interleaved with as many in a 1,000-path cache of the same server, every path signed beforehand and none asked twice within',
    'the 2 s narinfo cache, so both sides measure the database lookup. PostgreSQL is the shared cluster.',
    '',
    ...(sec7.length ? sec7 : ['Not run.']),
    '',
    BOTTLENECKS,
    '',
    LEFT_OUT,
    '',
    dedup,
    '',
  );
  await writeFile(DOC, out.join('\n'));
  console.error(`[bench] docs/benchmarks.md written (${goals.filter((g) => g.met).length} of ${goals.length} goals met)`);
}

/** From CPU profiles of the server (BENCH_CPU_PROF) and the figures above; see the report of issue 7. */
const PROFILED = '2026-11-26 12:42–12:57 UTC (HEAD between ec5e9c9 and acae9b9)';
const BOTTLENECKS = `### Bottlenecks found

(Profiled with \`BENCH_CPU_PROF=DIR npm run bench\`, which passes \`--cpu-prof\` to the server of the \`loft push\`
runs; \`node --import tsx bench/lib/cpuprofile.ts DIR\` prints self time by function for the main and worker threads.)

**Issue 10 (storage engine v2)** implemented fix 1 (pack files: one object per push or upload request, coalesced
ranged reads; docs/storage.md) and moved all per-byte work of ingest, commit verification and reads into the worker
pool (docs/architecture.md); the figures of the run above measure that code. The text below is the issue-7 analysis.

**Status at the final run above:** fixes 2 and 3 below landed during this work (27339ec: statements
reused, narinfos and misses cached; ee815c1: chunk lookups/inserts per batch, one worker message per batch, commit
decompressing on the calling thread; 9d30b35: 32-chunk read-ahead for downloads), so the tables measure them.
Re-profiled on 678f730 (the commit before the final one), the 268 MB push costs the server 6.0 s of CPU instead of 8.9 s (main thread 2.1 s instead of
3.7 s) but its wall time barely moved (8.5–10.8 s): both ends now wait (server 56 % of its core, client main thread
75 % idle) on the per-chunk file pipeline — \`ChunkStore.storeFrames\` still does one \`put\` per chunk (open, write,
stat, fsync, close, rename, open dir, fsync, close: ~9 libuv round trips, 4 threads, 2.7–3.1 s of their system CPU).
**Fix 1 is now the first one.** A fourth one was found and fixed for misses (the narinfo cache lifts hits,
not misses): **every error response closed the connection** — \`src/server/errors.ts\` set \`connection: close\`
whenever the request stream was not ended, which is true for every GET, so each 404 narinfo cost a new TCP
connection (Nix's own lookups of missing paths paid it too). Since abaf156 only a request with a pending body
is closed; misses at 16/64 connections went from 0.14×/0.13× to 0.34×/0.35× of nginx, and their p99 at 64
connections from 18.6 ms to 3.9 ms (table 1). Still open for misses: \`LoftError\` captures a stack for an
expected 404.

The three bottlenecks found before those commits, with the evidence:

Measured on ${PROFILED} with the 268 MB NAR of \`bench/lib/paths.nix\` pushed by \`loft push\` to a server pinned to one
core (SQLite, local storage), per-thread CPU from \`/proc/PID/task/*/stat\`, and under wrk for narinfo hits/misses.
The server is CPU-bound on its core in every flow (push: 78–83 % of the core busy, the rest is other load on the
shared machine; download: 95–100 %); the client is 80 % idle waiting for it.

1. **One file per chunk in local storage (push and download).** The 268 MB push stores ~3,500 chunks; the 4 libuv
   threadpool threads spent **3.7 s of system CPU** on it, 41 % of the server's 8.9 s of CPU (main thread 2.8 s user +
   0.8 s sys, chunk worker 0.7 s, V8 threads 0.7 s). A micro-benchmark of 2,000 frames of 48 KiB on this VM:
   \`LocalBlobStore.put\` costs **1.26 ms of CPU per chunk** (sys 2.0 s of 2.5 s); tmp+rename without any fsync still
   1.07 ms; creating even a 0-byte file 0.91 ms; appending the same frames to one file **0.04 ms per chunk**. So the
   cost is file creation (open/rename/close/mkdir syscalls, expensive on this VM), fsync adds only ~15 %. Downloads pay
   the same per chunk: \`ChunkStore.frames\` does \`readFile\` (open + fstat + read + close) per chunk, and a
   \`.nar.zst\` GET ran at 265–315 MB/s with the server at 95–100 % CPU, where nginx sends one file with sendfile.
   *Proposed fix:* pack files. \`src/core/chunk-store.ts\`: a \`storeFrames(frames[])\` that writes all the new frames
   of one chunk-upload request (\`receiveChunks\`) or one ingest window (\`ingestNar\`) as one blob
   \`packs/<random>.pack\` (one create, one fsync, one directory fsync) and records each chunk with
   \`(storage_key, storage_offset, stored_size)\` (new migration: \`chunks.storage_offset\`, 0 for existing one-chunk
   blobs); \`frames()\` coalesces consecutive chunks of the same pack into one ranged \`BlobStore.get(key, range)\`
   (already supported by local and S3). GC (\`src/gc/sweep.ts\`) then rewrites packs whose live share falls under
   ~50 %. Expected: ~1.2 ms → ~0.05 ms of CPU per chunk, i.e. about −3.5 s of the 8.9 s CPU for that push, and
   fewer syscalls per downloaded MB. (S3 has the same per-object cost, in requests instead of syscalls.)
2. **SQLite statements prepared on every query, and per-chunk queries (narinfo and push).** Under wrk on narinfo
   hits and misses, better-sqlite3's \`prepare\` was **18.5 % of the server's wall time (24 % of its busy CPU)**:
   Kysely's \`SqliteDriver\` calls \`db.prepare(sql)\` for every query and nothing caches it; Kysely's query building
   (\`visitNode\`, \`freeze\`, \`parseStringReference\`, \`cloneWithWhere\`) was another ~6 %, \`executeQuery\` 4.8 %,
   \`LoftError\` construction on misses 1.4 % (stack capture for an expected 404). In the push, \`executeQuery\` +
   \`prepare\` + Kysely compilation were ~1.3 s of the main thread's 2.8 s: \`storeRecord\` runs
   \`findChunksByHash\`, \`findVisibleChunks\` (for known chunks), \`insertChunk\` and \`stageChunks\` **per chunk**.
   *Proposed fix:* (a) \`src/db/dialect.ts\` \`openDatabase\`: pass \`SqliteDialect\` a thin wrapper of the
   better-sqlite3 \`Database\` whose \`prepare(sql)\` returns a cached \`Statement\` (Map keyed by SQL text, a few
   hundred entries) — Kysely stays, the 18 % goes. **A/B on a patched copy of the build (outside the repo, prepare
   cached exactly like that): narinfo hits at 64 connections 6,500–7,800 → 10,500–12,500 req/s, misses 4,300–4,900 →
   5,600–6,200 req/s, p50 at 64 connections 7–8 → 4.5–5.3 ms** (two alternating runs each). Statements used by
   Kysely's \`streamQuery\` (\`iterate\`) must not be shared while iterating; cache only \`all\`/\`run\` ones. (b) \`src/db/repos/objects.ts\` \`findObject\` (the narinfo
   lookup): build the query once with \`.compile()\` and run it with \`db.executeQuery\` on a parameter-substituted
   copy, or a raw prepared statement for SQLite / a named prepared statement for pg (dependencies.md: 196k q/s raw vs
   51k through Kysely). (c) \`src/core/chunk-upload.ts\` \`receiveChunks\`: verify the records of a request in
   batches (e.g. 64), then one \`findChunksByHash\`, one \`findVisibleChunks\`, one multi-row insert of the new chunks
   (\`onConflict doNothing\` + one select for the losers) and one \`stageChunks\` per batch — ~4 queries per 64 chunks
   instead of ~3–4 per chunk.
3. **A worker round-trip per 64 KiB chunk (push and commit).** \`storeRecord\` sends every uploaded frame to the
   pool (\`ChunkWorkerPool.verifyAndDecompress\`: a copy of the frame, \`postMessage\`, the decompressed 64 KiB sent
   back), and \`commitNar\` (\`src/core/nar-commit.ts\`, verifyContent) sends every chunk through the pool **again**
   after re-reading it. \`postMessage\` alone was **8.3 % of the main thread (1.05 s for 268 MB; 9.5 %, 2.2 s, in the
   profile of the 570 MB push of bench 3, where \`executeQuery\` + \`prepare\` were 10.1 %)** plus the copies
   (\`_copyActual\`), while the worker itself was busy only 0.7 s (94 % idle) — with the server on one core the
   thread adds messaging, not parallelism (as seen before: 2 pool threads slower than 1 sync thread for 64 KiB). The
   commit (\`POST /_api/v1/nar\`) took 1.05 s of the 9.6 s push. *Proposed fix:* in \`src/core/chunk-upload.ts\`,
   verify a batch of records with one pool message (frames in the transfer list; reply only per-record ok/size, not
   the decompressed bytes, which \`storeRecord\` does not use), or verify synchronously on the main thread with
   \`zstdDecompressSync\` + \`createHash\` when \`compression.threads\` resolves to 1; in \`commitNar\`, decompress with
   \`zstdDecompressSync\` on the calling thread (or one pool task per batch of frames that also feeds the NAR hash),
   and skip the per-chunk SHA-256 of the decompressed data there — the frame's \`stored_hash\` check already proves
   it is the bytes verified at upload, and the NAR hash covers the content. A/B on a patched build (synchronous
   \`zstdDecompressSync\` + SHA-256 in \`storeRecord\`, no per-chunk hash at commit): server user CPU for the 268 MB
   push 4.2–4.6 s → 3.7–4.0 s (about −12 %); wall time within this machine's noise (8.8–12.2 s vs 9.3–9.9 s) — the
   smallest of the three, worth doing with the batching of fix 2(c).

Also found: **the client's memory grows with upload concurrency, not with the NAR** (bench 4's client peak).
\`pushNar\`'s \`ChunkSender\` keeps up to 4 requests of up to 32 MiB in flight (\`Buffer.concat\` of the frames), and
undici copies each body again (\`cloneAsUint8Array\` / \`extractBody\` in the client's CPU profile), on top of two
32 MiB windows of raw chunks: ~4 × 2 × 32 + 2 × 32 MiB ≈ 320 MiB of buffers at worst. *Proposed fix*
(\`src/client/push-nar.ts\`): cap request bodies at 8 MiB on the client side whatever
\`max_chunk_request_bytes\` allows, and send them as a \`ReadableStream\` of the frames (\`duplex: 'half'\`) instead of
one concatenated \`Uint8Array\`, so nothing is copied twice; memory is then ~4 × 8 MiB + the windows.`;

const LEFT_OUT = `### Not covered

* nginx is Debian's stock build with one worker and no tuning beyond sendfile and keep-alive; wrk runs one thread on
  one core, so at 16–64 connections the nginx figures may be limited by wrk rather than nginx, which flatters Loft's
  ratios a little.
* Loft runs with SQLite and local storage in benches 1–4; PostgreSQL only in bench 5, S3 in none. The narinfo cache is
  small (the corpus closure), so every lookup hits SQLite's page cache.
* Pulling with Nix itself (\`nix copy --from\`, substitution) is not timed; downloads use curl, the memory bench's
  pull uses Node's fetch.
* Push bytes for \`nix copy --to http://\` are the sizes of the \`.nar.zst\` files it uploads (taken from the
  file:// cache written by the same nix with the same settings), not bytes counted on the wire; HTTP headers and
  narinfos (a few hundred bytes per path) are not counted for any method.
* Page caches are warm (each file is read once before timing); cold-cache downloads are not measured.
* The memory bench's 2 GB NAR is generated, not a store path; its server is the same single-process Loft.`;

await main();
