// Issue 12, scale: one cache of GC_SCALE_PATHS synthetic paths (default 1,000,000; BENCH_QUICK: 100,000)
// with a realistic reference fan-out, on SQLite and on PostgreSQL. Measured in the server process
// (`loft serve`, built): one GC pass of that cache (wall time, peak RSS), and narinfo lookup
// latency at that size against a 1,000-path cache of the same server, side by side.
// node --import tsx bench/gc-scale.bench.ts (normally through `npm run bench`).
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { sql, type Kysely } from 'kysely';
import { encodeNixBase32 } from '../src/nix/base32.ts';
import { openDatabase } from '../src/db/dialect.ts';
import type { Database } from '../src/db/schema.ts';
import type { GcReport } from '../src/api/v1.ts';
import { freshDatabase } from '../test/helpers/databases.ts';
import { postgresUnavailable } from '../test/helpers/env.ts';
import { log, median, QUICK, resetPeakRss, round, tempDir, timed, writeResult } from './lib/common.ts';
import { randomPathHash } from './lib/nix.ts';
import { startLoft, type LoftServer } from './lib/servers.ts';

const PATHS = Number(process.env.GC_SCALE_PATHS ?? (QUICK ? 100_000 : 1_000_000));
const SMALL = 1000;
const RETENTION_DAYS = 30;
/** Rounds of narinfo lookups; each asks every path of the small cache once. */
const ROUNDS = 3;
const BATCH = 500;
const DAY_MS = 86_400_000;

/** Paths most others depend on (glibc, coreutils, …): the first 1% of the cache. */
const POPULAR_SHARE = 0.01;

interface DbResult {
  db: 'sqlite' | 'postgres';
  skipped?: string;
  paths?: number;
  references?: number;
  fillSeconds?: number;
  gcSeconds?: number;
  gcPeakRssMB?: number;
  /** The server's RSS just before the pass (its baseline: V8, worker threads, SQLite page cache). */
  rssBeforeMB?: number;
  collected?: number;
  narsFreed?: number;
  narinfoMedianMs?: { big: number; small: number };
  narinfoP99Ms?: { big: number; small: number };
  /** Median latency in the big cache over the small one. */
  narinfoRatio?: number;
}

/** A random `sha256:<52 nix32>` (NARs are never read here, only their narinfo rendered). */
const fakeSha256 = () => `sha256:${encodeNixBase32(randomBytes(32))}`;

/** Deterministic pseudo-random numbers, so every run builds the same graph shape. */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

/**
 * Fills a cache the way Loft's write path would (objects, their JSON references and object_refs
 * rows, one NAR each). Each path refers to about 6 others: half popular ones, half recent
 * neighbours. Of the older 40 % of pushes, 90 % were last used long ago; of the rest, 10 %.
 */
async function fill(db: Kysely<Database>, cacheId: number, n: number, now: number): Promise<{ hashes: string[]; references: number }> {
  const rand = rng(n);
  const hashes = Array.from({ length: n }, randomPathHash);
  const popular = Math.max(1, Math.floor(n * POPULAR_SHARE));
  let references = 0;
  for (let start = 0; start < n; start += BATCH) {
    const end = Math.min(n, start + BATCH);
    const nars = await db
      .insertInto('nars')
      .values(
        Array.from({ length: end - start }, (_, k) => ({
          nar_hash: fakeSha256(),
          nar_size: 100_000,
          file_hash: fakeSha256(),
          file_size: 40_000,
          chunk_count: 0,
          created_at: now - 400 * DAY_MS,
        })),
      )
      .returning('id')
      .execute();
    const objects = [];
    const refsOf: string[][] = [];
    for (let i = start; i < end; i++) {
      const refs = new Set<string>();
      const k = i === 0 ? 0 : Math.min(i, Math.floor(rand() * 13));
      for (let r = 0; r < k; r++) {
        const j = rand() < 0.5 ? Math.floor(rand() * Math.min(i, popular)) : Math.max(0, i - 1 - Math.floor(rand() * 5000));
        if (j < i) refs.add(`${hashes[j]}-dep`);
      }
      refsOf.push([...refs]);
      // Older pushes (the first 40 %) are mostly unused now, newer ones mostly used.
      const unused = rand() < (i < 0.4 * n ? 0.9 : 0.1);
      const age = Math.round(unused ? (31 + rand() * 330) * DAY_MS : rand() * 20 * DAY_MS);
      objects.push({
        cache_id: cacheId,
        store_path_hash: hashes[i],
        store_path: `/nix/store/${hashes[i]}-dep`,
        nar_id: Number(nars[i - start].id),
        references: JSON.stringify([...refs].sort()),
        deriver: null,
        ca: null,
        client_sigs: '[]',
        server_sig: null,
        server_sig_key: null,
        created_by: 'bench',
        created_at: now - age,
        last_accessed_at: now - age,
      });
    }
    const ids = await db.insertInto('objects').values(objects).returning('id').execute();
    const refRows = refsOf.flatMap((refs, k) => refs.map((r) => ({ object_id: Number(ids[k].id), cache_id: cacheId, ref_hash: r.slice(0, 32) })));
    for (let i = 0; i < refRows.length; i += BATCH * 2) await db.insertInto('object_refs').values(refRows.slice(i, i + BATCH * 2)).execute();
    references += refRows.length;
    if (start % 100_000 === 0 && start > 0) log(`gc-scale: ${start} paths filled`);
  }
  return { hashes, references };
}

/**
 * Sequential narinfo lookups, big and small cache interleaved (the order alternating). Every path
 * looked up was rendered (and signed, which is stored) once in a warm-up, and no path is asked
 * twice within the narinfo cache's 2 s: each round asks each small-cache path once and as many
 * distinct big-cache paths, and rounds are 2.5 s apart. So both sides measure the database lookup.
 */
async function narinfoLatencies(loft: LoftServer, big: string[], small: string[]): Promise<{ big: number[]; small: number[] }> {
  const rand = rng(7);
  const shuffled = (xs: string[]) => {
    const a = [...xs];
    for (let i = a.length - 1; i > 0; i--) {
      const j = Math.floor(rand() * (i + 1));
      [a[i], a[j]] = [a[j], a[i]];
    }
    return a;
  };
  const bigSample = shuffled(big).slice(0, ROUNDS * small.length);
  const out = { big: [] as number[], small: [] as number[] };
  const one = async (cache: 'big' | 'small', hash: string, record: boolean) => {
    const t0 = performance.now();
    const res = await fetchOrOutput(loft, `${loft.url}/${cache}/${hash}.narinfo`, { headers: { authorization: `Bearer ${loft.token}` } });
    const text = await res.text();
    if (res.status !== 200) throw new Error(`narinfo ${cache}/${hash}: HTTP ${res.status} ${text}`);
    if (record) out[cache].push(performance.now() - t0);
  };
  for (const h of bigSample) await one('big', h, false);
  for (const h of small) await one('small', h, false);
  for (let r = 0; r < ROUNDS; r++) {
    await sleep(2500);
    const smallRound = shuffled(small);
    for (let i = 0; i < small.length; i++) {
      const pair = [() => one('big', bigSample[r * small.length + i], true), () => one('small', smallRound[i], true)];
      if (i % 2 === 1) pair.reverse();
      for (const lookup of pair) await lookup();
    }
  }
  return out;
}

/**
 * fetch, with the server's last output when the connection fails (a crash shows its reason). A GET
 * is tried twice: a keep-alive connection idle during the minutes of the fill is closed by now.
 */
async function fetchOrOutput(loft: LoftServer, url: string, init: RequestInit): Promise<Response> {
  try {
    return await fetch(url, init).catch((e: unknown) => {
      if ((init.method ?? 'GET') !== 'GET') throw e;
      return fetch(url, init);
    });
  } catch (e) {
    throw new Error(`${init.method ?? 'GET'} ${url}: ${(e as Error).message}\n${loft.output()}`, { cause: e });
  }
}

const p99 = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length * 0.99)];

async function benchOne(kind: 'sqlite' | 'postgres'): Promise<DbResult> {
  if (kind === 'postgres') {
    const why = await postgresUnavailable();
    if (why) return { db: kind, skipped: why };
  }
  const tmp = await tempDir('loft-bench-gc-scale-');
  const database = await freshDatabase(kind, tmp.path);
  // The timer's first pass is an hour away (the default interval): the bench runs its own.
  const loft = await startLoft({ databaseUrl: database.url });
  try {
    for (const name of ['big', 'small']) {
      await loft.createCache(name);
      const res = await fetch(`${loft.url}/_api/v1/cache-config/${name}`, {
        method: 'PATCH',
        headers: { authorization: `Bearer ${loft.token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ retention_period: RETENTION_DAYS * 86400 }),
      });
      if (res.status !== 200) throw new Error(`retention of ${name}: HTTP ${res.status}`);
    }
    const db = openDatabase({ url: database.url, poolSize: 2 });
    const now = Date.now();
    const ids = Object.fromEntries(
      (await db.kysely.selectFrom('caches').select(['id', 'name']).execute()).map((c) => [c.name, Number(c.id)]),
    );
    const filled = await timed(async () => {
      const big = await fill(db.kysely, ids.big, PATHS, now);
      const small = await fill(db.kysely, ids.small, SMALL, now);
      if (kind === 'postgres') await sql`analyze`.execute(db.kysely);
      return { big, small };
    });
    await db.close();
    const { big, small } = filled.value;
    log(`gc-scale ${kind}: ${PATHS} paths, ${big.references} references filled in ${round(filled.ms / 1000, 1)} s`);

    const latency = await narinfoLatencies(loft, big.hashes, small.hashes);
    await resetPeakRss(loft.pid);
    const before = await loft.rss();
    const pass = await timed(async () => {
      const res = await fetchOrOutput(loft, `${loft.url}/_api/v1/gc`, {
        method: 'POST',
        headers: { authorization: `Bearer ${loft.token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ cache: 'big' }),
      });
      if (res.status !== 200) throw new Error(`gc: HTTP ${res.status} ${await res.text()}`);
      return (await res.json()) as GcReport;
    });
    const rss = await loft.rss().catch((e: unknown) => {
      throw new Error(`the server is gone after the GC pass: ${(e as Error).message}\n${loft.output()}`);
    });
    const result: DbResult = {
      db: kind,
      paths: PATHS,
      references: big.references,
      fillSeconds: round(filled.ms / 1000, 1),
      gcSeconds: round(pass.ms / 1000, 1),
      gcPeakRssMB: round(Math.max(rss.hwm, before.rss) / 1e6, 0),
      rssBeforeMB: round(before.rss / 1e6, 0),
      collected: pass.value.paths,
      narsFreed: pass.value.nars,
      narinfoMedianMs: { big: round(median(latency.big), 3), small: round(median(latency.small), 3) },
      narinfoP99Ms: { big: round(p99(latency.big), 3), small: round(p99(latency.small), 3) },
      narinfoRatio: round(median(latency.big) / median(latency.small), 2),
    };
    log(
      `gc-scale ${kind}: pass ${result.gcSeconds} s, peak RSS ${result.gcPeakRssMB} MB (${result.rssBeforeMB} MB before), ${result.collected} paths and ` +
        `${result.narsFreed} NARs freed; narinfo median ${result.narinfoMedianMs!.big} ms vs ${result.narinfoMedianMs!.small} ms (×${result.narinfoRatio})`,
    );
    return result;
  } finally {
    await loft.stop();
    await database.drop();
    await tmp.cleanup();
  }
}

const only = process.env.GC_SCALE_DBS?.split(',') ?? ['sqlite', 'postgres'];
const results: DbResult[] = [];
for (const kind of ['sqlite', 'postgres'] as const) if (only.includes(kind)) results.push(await benchOne(kind));
await writeResult('gc-scale', { paths: PATHS, small: SMALL, retentionDays: RETENTION_DAYS, lookups: ROUNDS * SMALL, results });
