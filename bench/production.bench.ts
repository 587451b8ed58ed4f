// Issue 10: the push and download figures on production storage (PostgreSQL + S3, served by s3rver on
// loopback) beside the embedded defaults (SQLite + local disk), measured in the same run: `loft push` and
// `nix copy --to http://loft` of the push set, then a `.nar.zst` and a `.nar` download of its largest path.
// Each pair of runs alternates which backend goes first. Writes its own section of docs/benchmarks.md.
// node --import tsx bench/production.bench.ts (normally through `npm run bench`).
import { buildBenchPaths, curlGet, log, MB, median, round, RUNS, run, SERVER_CORE, tempDir, writeDocSection, writeResult } from './lib/common.ts';
import { hashPart, loftPush, nixCopyToLoft } from './lib/nix.ts';
import { startLoft, type LoftServer } from './lib/servers.ts';
import { freshDatabase } from '../test/helpers/databases.ts';
import { postgresUnavailable } from '../test/helpers/env.ts';
import { startS3rver } from '../test/helpers/s3rver.ts';

const HEADING = '## Production storage: PostgreSQL + S3 (issue 10)';

type Backend = 'embedded' | 'production';

interface Figures {
  loftPushMs: number;
  nixCopyMs: number;
  zstMBs: number;
  narMBs: number;
}

async function curlMBs(url: string): Promise<number> {
  const { bytes, seconds } = await curlGet(url);
  return bytes / MB / seconds;
}

/** A Loft server on the given backend, pinned like every bench server; s3rver shares the server core. */
async function startBackend(backend: Backend, work: string): Promise<{ loft: LoftServer; stop(): Promise<void> }> {
  if (backend === 'embedded') {
    const loft = await startLoft();
    return { loft, stop: () => loft.stop() };
  }
  const db = await freshDatabase('postgres', work);
  const s3 = await startS3rver({ bucket: 'loft-bench' });
  await run('taskset', ['-a', '-p', '-c', String(SERVER_CORE), String(s3.child.pid)]);
  const c = s3.config;
  const loft = await startLoft({
    databaseUrl: db.url,
    env: {
      LOFT_STORAGE_TYPE: 's3',
      LOFT_S3_BUCKET: c.bucket,
      LOFT_S3_REGION: c.region,
      LOFT_S3_ENDPOINT: c.endpoint,
      LOFT_S3_ACCESS_KEY_ID: c.accessKeyId,
      LOFT_S3_SECRET_ACCESS_KEY: c.secretAccessKey,
    },
  });
  return {
    loft,
    async stop() {
      await loft.stop();
      await s3.stop();
      await db.drop();
    },
  };
}

async function measure(backend: Backend, set: string[], big: string, work: string): Promise<Figures> {
  const { loft, stop } = await startBackend(backend, work);
  try {
    await loft.createCache('viaclient');
    await loft.createCache('vianix');
    const pushed = await loftPush(loft, 'viaclient', set);
    const nixCopyMs = await nixCopyToLoft(loft, 'vianix', set, work);
    const narinfo = await (await fetch(`${loft.url}/viaclient/${hashPart(big)}.narinfo`)).text();
    const url = /^URL: (\S+)$/m.exec(narinfo)?.[1];
    const narHash = /^NarHash: sha256:(\S+)$/m.exec(narinfo)?.[1];
    if (!url || !narHash) throw new Error(`unexpected narinfo of ${big}:\n${narinfo}`);
    const zstMBs = await curlMBs(`${loft.url}/viaclient/${url}`);
    const narMBs = await curlMBs(`${loft.url}/viaclient/nar/${narHash}.nar`);
    return { loftPushMs: pushed.ms, nixCopyMs, zstMBs, narMBs };
  } finally {
    await stop();
  }
}

async function main(): Promise<void> {
  const why = await postgresUnavailable();
  if (why) {
    await writeDocSection(HEADING, `${HEADING}\n\nNot run: ${why}.\n`);
    return;
  }
  const paths = await buildBenchPaths();
  const set = [paths.big, ...paths.others];
  const tmp = await tempDir('loft-bench-production-');
  const runs: Record<Backend, Figures>[] = [];
  try {
    for (let r = 0; r < RUNS; r++) {
      const order: Backend[] = r % 2 === 0 ? ['embedded', 'production'] : ['production', 'embedded'];
      const got = {} as Record<Backend, Figures>;
      for (const b of order) got[b] = await measure(b, set, paths.big, tmp.path);
      runs.push(got);
      const f = (x: Figures) => `push ${Math.round(x.loftPushMs)} ms, nix copy ${Math.round(x.nixCopyMs)} ms, .nar.zst ${x.zstMBs.toFixed(0)} MB/s, .nar ${x.narMBs.toFixed(0)} MB/s`;
      log(`production run ${r + 1}/${RUNS}: embedded ${f(got.embedded)}; production ${f(got.production)}`);
    }
  } finally {
    await tmp.cleanup();
  }
  const med = (b: Backend, k: keyof Figures) => median(runs.map((r) => r[b][k]));
  // production / embedded, as a speed ratio: < 1 means production storage is slower.
  const speed = (k: keyof Figures, time: boolean) => {
    const rs = runs.map((r) => (time ? r.embedded[k] / r.production[k] : r.production[k] / r.embedded[k]));
    return { median: round(median(rs), 2), all: rs.map((x) => round(x, 2)) };
  };
  const rows: [string, keyof Figures, boolean, string][] = [
    ['`loft push` of the push set (wall time)', 'loftPushMs', true, 's'],
    ['`nix copy --to http://loft` of the push set (wall time)', 'nixCopyMs', true, 's'],
    ['`.nar.zst` download of the largest path', 'zstMBs', false, 'MB/s'],
    ['`.nar` download of the largest path', 'narMBs', false, 'MB/s'],
  ];
  const fmt = (v: number, unit: string) => (unit === 's' ? `${(v / 1000).toFixed(2)} s` : `${Math.round(v)} MB/s`);
  const table = rows.map(([label, k, time, unit]) => {
    const s = speed(k, time);
    return `| ${label} | ${fmt(med('embedded', k), unit)} | ${fmt(med('production', k), unit)} | **${s.median}×** | ${s.all.join(', ')} |`;
  });
  const body = [
    HEADING,
    '',
    '`bench/production.bench.ts` (in `npm run bench`): the push set of bench 3 and its largest path, on the embedded',
    'defaults (SQLite, local disk) and on production storage (a fresh PostgreSQL database on 127.0.0.1:5432, and S3 served',
    'by s3rver on loopback, pinned to the server core with Loft), measured in the same run with the order alternating.',
    `${RUNS} pairs of runs; medians, and the median of the per-pair ratios (production speed / embedded speed: below 1,`,
    'production is slower). s3rver is a test server written in Node.js, far slower than S3 itself, so these figures bound',
    "Loft's overhead on S3 from above; they are reported, not goals.",
    '',
    '| figure | SQLite + disk | PostgreSQL + S3 | production / embedded | per-pair ratios |',
    '|---|---|---|---|---|',
    ...table,
    '',
  ].join('\n');
  await writeDocSection(HEADING, body);
  await writeResult('production', { runs: RUNS, raw: runs });
}

await main();
