// Issue 7, bench 5: POST /_api/v1/get-missing-paths with 50,000 hashes (half present) against a
// cache of 50,000 objects, on SQLite and on PostgreSQL.
// node --import tsx bench/missing-paths.bench.ts (normally through `npm run bench`).
import { randomBytes } from 'node:crypto';
import { sql } from 'kysely';
import { openDatabase } from '../src/db/dialect.ts';
import { freshDatabase } from '../test/helpers/databases.ts';
import { postgresUnavailable } from '../test/helpers/env.ts';
import { log, median, round, tempDir, timed, writeResult } from './lib/common.ts';
import { randomPathHash } from './lib/nix.ts';
import { startLoft } from './lib/servers.ts';

const OBJECTS = 50_000;
const QUERY = 50_000;
const REPEATS = 7;
const BATCH = 1000;

interface DbResult {
  db: 'sqlite' | 'postgres';
  skipped?: string;
  medianMs?: number;
  runsMs?: number[];
  missingReturned?: number;
  fillMs?: number;
}

async function benchOne(kind: 'sqlite' | 'postgres'): Promise<DbResult> {
  if (kind === 'postgres') {
    const why = await postgresUnavailable();
    if (why) return { db: kind, skipped: why };
  }
  const tmp = await tempDir('loft-bench-missing-');
  const database = await freshDatabase(kind, tmp.path);
  const loft = await startLoft({ databaseUrl: database.url });
  try {
    await loft.createCache('bench');
    // Fill through the DB layer (Loft's Kysely schema): one NAR row, 50k objects pointing at it.
    const db = openDatabase({ url: database.url, poolSize: 2 });
    const hashes = Array.from({ length: OBJECTS }, randomPathHash);
    const fill = await timed(async () => {
      const cache = await db.kysely.selectFrom('caches').select('id').where('name', '=', 'bench').executeTakeFirstOrThrow();
      const fake = () => `sha256:${randomPathHash()}${randomPathHash().slice(0, 20)}`;
      const nar = await db.kysely
        .insertInto('nars')
        .values({ nar_hash: fake(), nar_size: 8, file_hash: fake(), file_size: 8, chunk_count: 0, created_at: Date.now() })
        .returning('id')
        .executeTakeFirstOrThrow();
      const now = Date.now();
      for (let i = 0; i < hashes.length; i += BATCH) {
        await db.kysely
          .insertInto('objects')
          .values(
            hashes.slice(i, i + BATCH).map((h) => ({
              cache_id: cache.id,
              store_path_hash: h,
              store_path: `/nix/store/${h}-bench-object`,
              nar_id: nar.id,
              references: '[]',
              deriver: null,
              ca: null,
              client_sigs: '[]',
              server_sig: null,
              server_sig_key: null,
              created_by: 'bench',
              created_at: now,
              last_accessed_at: now,
            })),
          )
          .execute();
      }
      if (kind === 'postgres') await sql`analyze`.execute(db.kysely);
    });
    await db.close();

    // Half present (every other stored hash), half absent, interleaved.
    const query: string[] = [];
    for (let i = 0; query.length < QUERY; i++) query.push(i % 2 === 0 ? hashes[i] : randomPathHash());
    const body = JSON.stringify({ cache: 'bench', store_path_hashes: query });
    const ask = async () => {
      const res = await fetch(`${loft.url}/_api/v1/get-missing-paths`, {
        method: 'POST',
        headers: { authorization: `Bearer ${loft.token}`, 'content-type': 'application/json' },
        body,
      });
      if (res.status !== 200) throw new Error(`get-missing-paths: HTTP ${res.status} ${await res.text()}`);
      return ((await res.json()) as { missing_paths: string[] }).missing_paths.length;
    };
    const missing = await ask(); // warm-up
    if (missing !== QUERY / 2) throw new Error(`expected ${QUERY / 2} missing, got ${missing}`);
    const runsMs: number[] = [];
    for (let r = 0; r < REPEATS; r++) runsMs.push((await timed(ask)).ms);
    const result = { db: kind, medianMs: round(median(runsMs), 1), runsMs: runsMs.map((x) => round(x, 1)), missingReturned: missing, fillMs: Math.round(fill.ms) };
    log(`missing-paths ${kind}: median ${result.medianMs} ms (${result.runsMs.join(', ')})`);
    return result;
  } finally {
    await loft.stop();
    await database.drop();
    await tmp.cleanup();
  }
}

const results: DbResult[] = [];
for (const kind of ['sqlite', 'postgres'] as const) results.push(await benchOne(kind));
await writeResult('missing-paths', { objects: OBJECTS, query: QUERY, repeats: REPEATS, nonce: randomBytes(4).toString('hex'), results });
