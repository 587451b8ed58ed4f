// Chunk dedup between two versions of a ~100 MB tree: node --import tsx bench/dedup.bench.ts
// Pushes v1, then v2 (a few small edits) with pushNar to a fresh in-process server on SQLite,
// and records what v2 sent and what both take in storage in docs/benchmarks.md.
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { chmod, copyFile, cp, lstat, mkdir, open, readdir, readFile, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { dumpPath } from '../src/nix/nar/writer.ts';
import { formatSha256Nix32 } from '../src/nix/hash.ts';
import { zstdCompressSync } from '../src/compression/zstd.ts';
import { ChunkWorkerPool } from '../src/compression/pool.ts';
import { LoftClient } from '../src/client/http.ts';
import { pushNar, type PushNarResult } from '../src/client/push-nar.ts';
import { startTestServer } from '../test/helpers/server.ts';
import { makeTempDir } from '../test/helpers/tmp.ts';
import { randomStorePath } from '../test/helpers/nar.ts';
import { writeDocSection } from './lib/common.ts';

const TARGET_BYTES = 100 * 1024 * 1024;
const MAX_FILE_BYTES = 8 * 1024 * 1024;
const RANDOM_BYTES = 8 * 1024 * 1024;
const SOURCES = ['/usr/lib', '/usr/share'];
const MiB = 1024 * 1024;
const HEADING = '## Chunk dedup (issue 4)';

/** Regular files under `dir`, depth first in name order, so the tree is the same on every run. */
async function* filesUnder(dir: string): AsyncGenerator<{ file: string; size: number }> {
  let names: string[];
  try {
    names = (await readdir(dir)).sort();
  } catch {
    return;
  }
  for (const name of names) {
    const file = path.join(dir, name);
    const st = await lstat(file).catch(() => undefined);
    if (st?.isDirectory()) yield* filesUnder(file);
    else if (st?.isFile() && st.size > 0 && st.size <= MAX_FILE_BYTES) yield { file, size: st.size };
  }
}

/** ~100 MB of real files copied from the system, plus some random bytes; returns the largest file. */
async function buildTree(root: string): Promise<{ bytes: number; files: number; largest: string }> {
  let bytes = 0;
  let files = 0;
  let largest = { file: '', size: 0 };
  outer: for (const source of SOURCES) {
    for await (const { file, size } of filesUnder(source)) {
      const dest = path.join(root, file);
      await mkdir(path.dirname(dest), { recursive: true });
      if (!(await copyFile(file, dest).then(() => true, () => false))) continue;
      bytes += size;
      files++;
      if (size > largest.size) largest = { file: dest, size };
      if (bytes >= TARGET_BYTES - RANDOM_BYTES) break outer;
    }
  }
  await writeFile(path.join(root, 'random.bin'), randomBytes(RANDOM_BYTES));
  return { bytes: bytes + RANDOM_BYTES, files: files + 1, largest: largest.file };
}

/** v2: bytes inserted in the middle of the largest file, a new file that sorts first, one file rewritten in place. */
async function editTree(root: string, largest: string): Promise<void> {
  const big = await readFile(largest);
  const mid = big.length >> 1;
  await chmod(largest, 0o644);
  await writeFile(largest, Buffer.concat([big.subarray(0, mid), Buffer.from('-- inserted by v2 --\n'), big.subarray(mid)]));
  await writeFile(path.join(root, '0-new-in-v2.txt'), 'a file that sorts before everything else\n'.repeat(50));
  const fh = await open(path.join(root, 'random.bin'), 'r+');
  await fh.write(randomBytes(4096), 0, 4096, RANDOM_BYTES / 3);
  await fh.close();
}

/** Dumps the NAR to a file; returns its size, hash and the size of zstd -3 of it in 1 MiB pieces. */
async function dumpNar(tree: string, file: string): Promise<{ size: number; hash: string; zstdBytes: number }> {
  const hasher = createHash('sha256');
  let size = 0;
  let zstdBytes = 0;
  await pipeline(
    dumpPath(tree),
    async function* (source: AsyncIterable<Buffer>) {
      let pending: Buffer[] = [];
      let pendingBytes = 0;
      const compress = () => {
        if (pendingBytes > 0) zstdBytes += zstdCompressSync(Buffer.concat(pending), 3).length;
        pending = [];
        pendingBytes = 0;
      };
      for await (const piece of source) {
        hasher.update(piece);
        size += piece.length;
        pending.push(piece);
        pendingBytes += piece.length;
        if (pendingBytes >= MiB) compress();
        yield piece;
      }
      compress();
    },
    createWriteStream(file),
  );
  return { size, hash: formatSha256Nix32(hasher.digest()), zstdBytes };
}

function gitCommit(): string {
  try {
    return execFileSync('git', ['rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim();
  } catch {
    return 'unknown';
  }
}

async function main(): Promise<void> {
  const tmp = await makeTempDir('loft-dedup-bench-');
  const server = await startTestServer({ db: 'sqlite' });
  const pool = new ChunkWorkerPool();
  try {
    const v1 = path.join(tmp.path, 'v1');
    const v2 = path.join(tmp.path, 'v2');
    const tree = await buildTree(v1);
    await cp(v1, v2, { recursive: true });
    await editTree(v2, tree.largest.replace(v1, v2));
    const nar1 = await dumpNar(v1, path.join(tmp.path, 'v1.nar'));
    const nar2 = await dumpNar(v2, path.join(tmp.path, 'v2.nar'));

    await server.createCache('bench');
    const client = new LoftClient({ endpoint: server.url, token: server.adminToken });
    const push = async (nar: { size: number; hash: string }, file: string): Promise<PushNarResult & { ms: number }> => {
      const meta = { storePath: randomStorePath('bench').path, narHash: nar.hash, narSize: nar.size, references: [], sigs: [] };
      const started = performance.now();
      const r = await pushNar(client, 'bench', meta, createReadStream(file, { highWaterMark: MiB }), { pool });
      return { ...r, ms: performance.now() - started };
    };
    const r1 = await push(nar1, path.join(tmp.path, 'v1.nar'));
    const r2 = await push(nar2, path.join(tmp.path, 'v2.nar'));
    const stats = (await (await server.fetch('/_api/v1/stats', { token: server.adminToken })).json()) as { stored_bytes: number };

    const sentShare = r2.uploadedBytes / nar2.size;
    const storedShare = stats.stored_bytes / (nar1.zstdBytes + nar2.zstdBytes);
    const mbps = (bytes: number, ms: number) => Number((bytes / 1e6 / (ms / 1000)).toFixed(1));
    const result = {
      bench: 'dedup',
      tree_files: tree.files,
      nar1_bytes: nar1.size,
      nar2_bytes: nar2.size,
      v1_sent_bytes: r1.uploadedBytes,
      v1_push_ms: Math.round(r1.ms),
      v1_push_mb_s: mbps(nar1.size, r1.ms),
      v2_sent_bytes: r2.uploadedBytes,
      v2_sent_pct: Number((sentShare * 100).toFixed(2)),
      v2_uploaded_chunks: r2.uploadedChunks,
      v2_chunks: r2.chunks,
      v2_push_ms: Math.round(r2.ms),
      v2_push_mb_s: mbps(nar2.size, r2.ms),
      stored_bytes: stats.stored_bytes,
      zstd3_both_bytes: nar1.zstdBytes + nar2.zstdBytes,
      stored_vs_zstd3: Number(storedShare.toFixed(3)),
      goal_sent_le_5pct: sentShare <= 0.05,
      goal_stored_le_0_6: storedShare <= 0.6,
    };
    console.log(JSON.stringify(result));
    const mb = (b: number) => (b / 1e6).toFixed(1);
    const row =
      `| ${mb(nar1.size)} / ${mb(nar2.size)} MB | ${mb(r2.uploadedBytes)} MB (${result.v2_sent_pct} %) ${result.goal_sent_le_5pct ? '✅' : '❌'} ` +
      `| ${mb(stats.stored_bytes)} MB = ${result.stored_vs_zstd3} × ${mb(result.zstd3_both_bytes)} MB ${result.goal_stored_le_0_6 ? '✅' : '❌'} ` +
      `| ${result.v1_push_ms} ms (${result.v1_push_mb_s} MB/s) | ${result.v2_push_ms} ms (${result.v2_push_mb_s} MB/s) |`;
    console.log(row);

    const machine = `${os.cpus()[0]?.model ?? 'unknown CPU'}, ${os.availableParallelism()} vCPU, ${(os.totalmem() / 2 ** 30).toFixed(1)} GiB, Node ${process.versions.node}`;
    await writeDocSection(
      HEADING,
      [
        HEADING,
        '',
        '`node --import tsx bench/dedup.bench.ts`: a tree of ~100 MB copied from /usr/lib and /usr/share plus 8 MiB of',
        'random bytes is pushed with `pushNar` to a fresh in-process server (SQLite, local storage); v2 of the tree has',
        'bytes inserted in the middle of its largest file, a new file that sorts first and 4 KiB rewritten in the random',
        'file. Goals: v2 sends ≤ 5 % of its NAR size; storage after both pushes ≤ 0.6 × the two NARs compressed with',
        'zstd -3 each (in 1 MiB pieces).',
        '',
        `Machine: ${machine}. Date: ${new Date().toISOString().slice(0, 10)}. Commit: ${gitCommit()}.`,
        '',
        '| NAR v1 / v2 | sent for v2 | stored after both | push v1 | push v2 |',
        '|---|---|---|---|---|',
        row,
        '',
        `Goals: v2 sent ≤ 5 % — ${result.goal_sent_le_5pct ? 'met' : 'not met'}; stored ≤ 0.6 × zstd -3 — ${result.goal_stored_le_0_6 ? 'met' : 'not met'}.`,
        '',
      ].join('\n'),
    );
  } finally {
    await pool.close();
    await server.close();
    await tmp.cleanup();
  }
}

await main();
