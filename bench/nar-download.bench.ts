// Issue 7, bench 2: NAR download of a large path, Loft vs nginx on the same NAR.
// node --import tsx bench/nar-download.bench.ts (normally through `npm run bench`).
import path from 'node:path';
import { buildBenchPaths, curlGet, log, MB, median, round, RUNS, tempDir, writeResult, type Download } from './lib/common.ts';
import { hashPart, loftPush, nixCopyToFile, readFileCacheNarinfos } from './lib/nix.ts';
import { startLoft, startNginx } from './lib/servers.ts';

export interface DownloadRow {
  variant: 'zst' | 'nar';
  narBytes: number;
  nginxBytes: number;
  loftBytes: number;
  /** Medians of wire MB/s. */
  nginxMBs: number;
  loftMBs: number;
  /** Median of per-run nginx time / Loft time (= Loft's NAR throughput / nginx's). */
  ratio: number;
  ratios: number[];
  goal: number;
}

async function main(): Promise<void> {
  const tmp = await tempDir('loft-bench-download-');
  const paths = await buildBenchPaths();
  const zstCache = path.join(tmp.path, 'zst');
  const rawCache = path.join(tmp.path, 'none');
  await nixCopyToFile(zstCache, [paths.big], tmp.path, 'zstd');
  await nixCopyToFile(rawCache, [paths.big], tmp.path, 'none');
  const h = hashPart(paths.big);
  const zstInfo = (await readFileCacheNarinfos(zstCache)).get(h)!;
  const rawInfo = (await readFileCacheNarinfos(rawCache)).get(h)!;
  const narBytes = Number(zstInfo.NarSize);
  log(`download: NAR of ${(narBytes / MB).toFixed(0)} MB (${paths.big})`);

  const loft = await startLoft();
  const nginxZst = await startNginx(zstCache);
  const nginxRaw = await startNginx(rawCache);
  try {
    await loft.createCache('bench');
    await loftPush(loft, 'bench', [paths.big]);
    const narinfo = await (await fetch(`${loft.url}/bench/${h}.narinfo`)).text();
    const loftUrl = /^URL: (.+)$/m.exec(narinfo)?.[1];
    const narHash = /^NarHash: sha256:(.+)$/m.exec(narinfo)?.[1];
    if (!loftUrl || !narHash) throw new Error(`unexpected Loft narinfo:\n${narinfo}`);
    const urls = {
      zst: { nginx: `${nginxZst.url}/${zstInfo.URL}`, loft: `${loft.url}/bench/${loftUrl}` },
      nar: { nginx: `${nginxRaw.url}/${rawInfo.URL}`, loft: `${loft.url}/bench/nar/${narHash}.nar` },
    };
    // Warm-up: the page cache holds both servers' files afterwards (each is read once).
    for (const v of ['zst', 'nar'] as const) {
      await curlGet(urls[v].nginx);
      await curlGet(urls[v].loft);
    }

    const rows: DownloadRow[] = [];
    for (const variant of ['zst', 'nar'] as const) {
      const n: Download[] = [];
      const l: Download[] = [];
      for (let r = 0; r < RUNS; r++) {
        if (r % 2 === 0) n.push(await curlGet(urls[variant].nginx));
        l.push(await curlGet(urls[variant].loft));
        if (r % 2 === 1) n.push(await curlGet(urls[variant].nginx));
      }
      if (variant === 'nar' && (l[0].bytes !== narBytes || n[0].bytes !== narBytes)) {
        throw new Error(`.nar sizes differ from NarSize ${narBytes}: nginx ${n[0].bytes}, loft ${l[0].bytes}`);
      }
      const ratios = l.map((x, i) => n[i].seconds / x.seconds);
      const row: DownloadRow = {
        variant,
        narBytes,
        nginxBytes: n[0].bytes,
        loftBytes: l[0].bytes,
        nginxMBs: round(median(n.map((d) => d.bytes / MB / d.seconds)), 0),
        loftMBs: round(median(l.map((d) => d.bytes / MB / d.seconds)), 0),
        ratio: round(median(ratios), 3),
        ratios: ratios.map((x) => round(x, 3)),
        goal: variant === 'zst' ? 0.7 : 0.5,
      };
      log(`download ${variant}: nginx ${row.nginxMBs} MB/s, loft ${row.loftMBs} MB/s, ratio ${row.ratio}`);
      rows.push(row);
    }
    const rss = await loft.rss();
    await writeResult('nar-download', { storePath: paths.big, runs: RUNS, rows, loftServerPeakRss: rss.hwm });
  } finally {
    await nginxZst.stop();
    await nginxRaw.stop();
    await loft.stop();
    await tmp.cleanup();
  }
}

await main();
