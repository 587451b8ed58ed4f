// Issue 7, bench 3 (issue 10's push set: ≥ 800 MB in ≥ 20 paths): pushing the store paths, then again after a small edit to the largest:
// `nix copy` to a local file:// cache (the floor), `nix copy` to Loft, and Loft's own client.
// node --import tsx bench/push.bench.ts (normally through `npm run bench`).
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { buildBenchPaths, cpuDelta, cpuTimes, dirBytes, log, MB, median, round, RUNS, tempDir, writeResult, type CpuTimes } from './lib/common.ts';
import { hashPart, loftPush, nixCopyToFile, nixCopyToLoft, readFileCacheNarinfos } from './lib/nix.ts';
import { startLoft } from './lib/servers.ts';

interface Step {
  ms: number;
  bytes: number;
  /** CPU used by the Loft server during the step (HTTP methods only). */
  serverCpu?: CpuTimes;
}
interface RunResult {
  file: { initial: Step; edit: Step };
  nixHttp: { initial: Step; edit: Step };
  loftClient: { initial: Step; edit: Step };
}

const PROFILE_DIR = process.env.BENCH_CPU_PROF;

async function main(): Promise<void> {
  const tmp = await tempDir('loft-bench-push-');
  const paths = await buildBenchPaths();
  const set = [paths.big, ...paths.others];
  const runs: RunResult[] = [];
  let narBytes = 0;
  let editedNarBytes = 0;
  try {
    for (let r = 0; r < RUNS; r++) {
      const work = async (name: string) => {
        const d = path.join(tmp.path, `run${r}-${name}`);
        await mkdir(d, { recursive: true });
        return d;
      };
      // 1. nix copy to a local file:// cache: wall time and bytes written.
      const fileWork = await work('file');
      const fileCache = path.join(fileWork, 'cache');
      const fileInitialMs = await nixCopyToFile(fileCache, set, fileWork);
      const fileInitialBytes = await dirBytes(fileCache);
      const fileEditMs = await nixCopyToFile(fileCache, [paths.bigEdited], fileWork);
      const fileEditBytes = (await dirBytes(fileCache)) - fileInitialBytes;
      const infos = await readFileCacheNarinfos(fileCache);
      const fileSize = (p: string) => Number(infos.get(hashPart(p))!.FileSize);
      narBytes = set.reduce((n, p) => n + Number(infos.get(hashPart(p))!.NarSize), 0);
      editedNarBytes = Number(infos.get(hashPart(paths.bigEdited))!.NarSize);

      // 2. nix copy to Loft over HTTP (sends the same .nar.zst files nix wrote above).
      const httpWork = await work('http');
      const a = await startLoft();
      let nixHttp: RunResult['nixHttp'];
      try {
        await a.createCache('bench');
        const c0 = await cpuTimes(a.pid);
        const initialMs = await nixCopyToLoft(a, 'bench', set, httpWork);
        const c1 = await cpuTimes(a.pid);
        const editMs = await nixCopyToLoft(a, 'bench', [paths.bigEdited], httpWork);
        const c2 = await cpuTimes(a.pid);
        nixHttp = {
          initial: { ms: initialMs, bytes: set.reduce((n, p) => n + fileSize(p), 0), serverCpu: cpuDelta(c0, c1) },
          edit: { ms: editMs, bytes: fileSize(paths.bigEdited), serverCpu: cpuDelta(c1, c2) },
        };
      } finally {
        await a.stop();
      }

      // 3. Loft's client (`loft push`): chunk negotiation, only missing chunks sent.
      const b = await startLoft({ cpuProfDir: PROFILE_DIR && r === 0 ? path.join(PROFILE_DIR, 'push-server') : undefined });
      let loftClient: RunResult['loftClient'];
      try {
        await b.createCache('bench');
        const c0 = await cpuTimes(b.pid);
        const initial = await loftPush(b, 'bench', set);
        const c1 = await cpuTimes(b.pid);
        const edit = await loftPush(b, 'bench', [paths.bigEdited]);
        const c2 = await cpuTimes(b.pid);
        loftClient = {
          initial: { ms: initial.ms, bytes: initial.summary.bytes_sent, serverCpu: cpuDelta(c0, c1) },
          edit: { ms: edit.ms, bytes: edit.summary.bytes_sent, serverCpu: cpuDelta(c1, c2) },
        };
      } finally {
        await b.stop();
      }
      const result: RunResult = {
        file: { initial: { ms: fileInitialMs, bytes: fileInitialBytes }, edit: { ms: fileEditMs, bytes: fileEditBytes } },
        nixHttp,
        loftClient,
      };
      runs.push(result);
      log(
        `push run ${r + 1}/${RUNS}: file ${Math.round(fileInitialMs)}/${Math.round(fileEditMs)} ms, ` +
          `nix→loft ${Math.round(nixHttp.initial.ms)}/${Math.round(nixHttp.edit.ms)} ms, ` +
          `loft push ${Math.round(loftClient.initial.ms)}/${Math.round(loftClient.edit.ms)} ms ` +
          `(${(loftClient.initial.bytes / MB).toFixed(1)}/${(loftClient.edit.bytes / MB).toFixed(2)} MB sent)`,
      );
      await tmp.cleanup().then(() => mkdir(tmp.path, { recursive: true }));
    }
  } finally {
    await tmp.cleanup();
  }

  const med = (f: (r: RunResult) => number) => median(runs.map(f));
  const summary = (k: keyof RunResult, phase: 'initial' | 'edit') => {
    const cpu = (f: (c: CpuTimes) => number) => Math.round(med((r) => (r[k][phase].serverCpu ? f(r[k][phase].serverCpu!) : NaN)));
    return {
      ms: Math.round(med((r) => r[k][phase].ms)),
      bytes: Math.round(med((r) => r[k][phase].bytes)),
      /** Medians, ms of CPU of the server during the step: main thread and other threads, user and system. */
      serverCpu:
        k === 'file'
          ? undefined
          : { mainUser: cpu((c) => c.mainUser), mainSys: cpu((c) => c.mainSys), otherUser: cpu((c) => c.otherUser), otherSys: cpu((c) => c.otherSys) },
      /** Median of (server CPU ms / wall ms): 1 = one core fully busy. */
      serverCoreShare:
        k === 'file' ? undefined : round(med((r) => { const c = r[k][phase].serverCpu!; return (c.mainUser + c.mainSys + c.otherUser + c.otherSys) / r[k][phase].ms; }), 2),
    };
  };
  const ratio = (phase: 'initial' | 'edit', k: keyof RunResult) => {
    const rs = runs.map((r) => r.file[phase].ms / r[k][phase].ms);
    return { ratio: round(median(rs), 3), ratios: rs.map((x) => round(x, 3)) };
  };
  const phases = (['initial', 'edit'] as const).map((phase) => ({
    phase,
    file: summary('file', phase),
    nixHttp: summary('nixHttp', phase),
    loftClient: summary('loftClient', phase),
    /** file time / Loft client time: > 1 means Loft's client beat the local floor. */
    loftVsFile: ratio(phase, 'loftClient'),
    nixHttpVsFile: ratio(phase, 'nixHttp'),
  }));
  await writeResult('push', { paths: set, edited: paths.bigEdited, narBytes, editedNarBytes, runs: RUNS, phases, raw: runs });
}

await main();
