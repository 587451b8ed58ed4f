// Closure safety, proven by property: over random reference DAGs, access times, retention
// periods, grace periods and pins (with revisions), a GC pass on a real SQLite and PostgreSQL
// database leaves every remaining path's closure complete and collects exactly the paths that
// were expired and unreachable from every kept path. The oracle below is an independent model
// (a breadth-first walk in memory); the server's walk is the recursive query in src/gc/closure.ts.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { DB_KINDS, freshDatabase, type DbKind } from '../../helpers/databases.ts';
import { postgresUnavailable, skipUnless } from '../../helpers/env.ts';
import { makeTempDir } from '../../helpers/tmp.ts';
import { randomStorePath } from '../../helpers/nar.ts';
import { insertTestCache } from '../../helpers/rows.ts';
import { openDatabase, type Db } from '../../../src/db/dialect.ts';
import { migrateToLatest } from '../../../src/db/migrate.ts';
import { upsertObject } from '../../../src/db/repos/objects.ts';
import { setPin } from '../../../src/db/repos/pins.ts';
import { runGarbageCollection } from '../../../src/gc/run.ts';
import { LocalBlobStore } from '../../../src/storage/local.ts';
import { ChunkStore } from '../../../src/core/chunk-store.ts';
import { ChunkWorkerPool } from '../../../src/compression/pool.ts';

const HOUR = 3600;
const DAY = 86400;

interface PinSpec {
  keepRevisions: number | null;
  keepDays: number | null;
  /** Targets (node indexes), oldest first, each with its age in seconds when it was pinned. */
  targets: { node: number; ageSeconds: number }[];
}

interface Scenario {
  /** refs[i]: nodes that node i refers to (all < i: a DAG), and whether it refers to itself. */
  refs: number[][];
  selfRef: boolean[];
  ageSeconds: number[];
  retentionSeconds: number;
  graceSeconds: number;
  pins: PinSpec[];
}

const scenario: fc.Arbitrary<Scenario> = fc.integer({ min: 1, max: 24 }).chain((n) =>
  fc.record({
    refs: fc.tuple(...Array.from({ length: n }, (_, i) => fc.uniqueArray(fc.integer({ min: 0, max: Math.max(0, i - 1) }), { maxLength: i === 0 ? 0 : 4 }))),
    selfRef: fc.array(fc.boolean(), { minLength: n, maxLength: n }),
    ageSeconds: fc.array(fc.integer({ min: 0, max: 20 * DAY }), { minLength: n, maxLength: n }),
    retentionSeconds: fc.constantFrom(0, HOUR, DAY, 3 * DAY, 7 * DAY, 14 * DAY),
    graceSeconds: fc.constantFrom(0, HOUR, 2 * DAY, 10 * DAY),
    pins: fc.array(
      fc.record({
        keepRevisions: fc.option(fc.integer({ min: 1, max: 3 }), { nil: null }),
        keepDays: fc.option(fc.integer({ min: 1, max: 10 }), { nil: null }),
        targets: fc
          .array(fc.record({ node: fc.integer({ min: 0, max: n - 1 }), ageSeconds: fc.integer({ min: 0, max: 20 * DAY }) }), {
            minLength: 1,
            maxLength: 4,
          })
          // Pinned in order: the oldest first.
          .map((ts) => ts.sort((a, b) => b.ageSeconds - a.ageSeconds)),
      }),
      { maxLength: 3 },
    ),
  }),
);

/** The model: which nodes a pass must keep. */
function expectedKept(s: Scenario): Set<number> {
  const n = s.refs.length;
  const all = new Set(Array.from({ length: n }, (_, i) => i));
  if (s.retentionSeconds === 0) return all;
  const keepFor = Math.max(s.retentionSeconds, s.graceSeconds);
  const roots = [...all].filter((i) => s.ageSeconds[i] <= keepFor);
  for (const p of s.pins) {
    // A re-pin to the current target adds no revision.
    const revisions = p.targets.filter((t, i) => i === 0 || p.targets[i - 1].node !== t.node).reverse();
    revisions.forEach((r, rank) => {
      const kept =
        rank === 0 ||
        (p.keepRevisions === null && p.keepDays === null) ||
        (p.keepRevisions !== null && rank < p.keepRevisions) ||
        (p.keepDays !== null && r.ageSeconds <= p.keepDays * DAY);
      if (kept) roots.push(r.node);
    });
  }
  const kept = new Set<number>();
  const queue = [...roots];
  while (queue.length > 0) {
    const i = queue.pop()!;
    if (kept.has(i)) continue;
    kept.add(i);
    queue.push(...s.refs[i]);
  }
  return kept;
}

async function migrated(t: TestContext, kind: DbKind): Promise<{ db: Db; store: ChunkStore } | undefined> {
  if (kind === 'postgres' && !skipUnless(t, await postgresUnavailable())) return undefined;
  const tmp = await makeTempDir('loft-gc-prop-');
  const fresh = await freshDatabase(kind, tmp.path);
  const db = openDatabase({ url: fresh.url, poolSize: 4 });
  const pool = new ChunkWorkerPool({ threads: 1 });
  t.after(async () => {
    await pool.close();
    await db.close();
    await fresh.drop();
    await tmp.cleanup();
  });
  await migrateToLatest(db);
  return { db, store: new ChunkStore(db.kysely, new LocalBlobStore({ type: 'local', path: `${tmp.path}/storage` }), pool) };
}

let seq = 0;

/** Writes the scenario through the production write paths (upsertObject, setPin); returns the cache and node paths. */
async function materialise(db: Db, s: Scenario, now: number) {
  const cache = await insertTestCache(db.kysely, `prop-${++seq}`, s.retentionSeconds);
  const nar = await db.kysely
    .insertInto('nars')
    .values({ nar_hash: `sha256:${randomBytes(16).toString('hex')}`, nar_size: 1, file_hash: 'sha256:x', file_size: 1, chunk_count: 0, created_at: now })
    .returning('id')
    .executeTakeFirstOrThrow();
  const paths = s.refs.map((_, i) => randomStorePath(`node-${i}`));
  for (let i = 0; i < paths.length; i++) {
    const refs = [...s.refs[i].map((j) => paths[j].baseName), ...(s.selfRef[i] ? [paths[i].baseName] : [])];
    await upsertObject(db.kysely, {
      cache_id: cache.id,
      store_path_hash: paths[i].hash,
      store_path: paths[i].path,
      nar_id: Number(nar.id),
      references: JSON.stringify(refs),
      deriver: null,
      ca: null,
      client_sigs: '[]',
      server_sig: null,
      server_sig_key: null,
      created_by: null,
      created_at: now - s.ageSeconds[i] * 1000,
      last_accessed_at: now - s.ageSeconds[i] * 1000,
    });
  }
  for (const [k, p] of s.pins.entries()) {
    for (const target of p.targets) {
      await setPin(
        db.kysely,
        { cache_id: cache.id, name: `pin-${k}`, keep_revisions: p.keepRevisions, keep_days: p.keepDays, created_by: null, created_at: now - target.ageSeconds * 1000 },
        { store_path_hash: paths[target.node].hash, store_path: paths[target.node].path },
      );
    }
  }
  return { cache, paths };
}

async function remaining(db: Db, cacheId: number): Promise<Map<string, string[]>> {
  const rows = await db.kysely.selectFrom('objects').select(['store_path_hash', 'references']).where('cache_id', '=', cacheId).execute();
  return new Map(rows.map((r) => [r.store_path_hash, (JSON.parse(r.references) as string[]).map((b) => b.slice(0, 32))]));
}

for (const kind of DB_KINDS) {
  test(`after GC every remaining closure is complete and only expired, unreachable paths went (${kind})`, { timeout: 600_000 }, async (t) => {
    const m = await migrated(t, kind);
    if (!m) return;
    await fc.assert(
      fc.asyncProperty(scenario, async (s) => {
        const now = Date.now();
        const { cache, paths } = await materialise(m.db, s, now);
        const kept = expectedKept(s);
        const expectedGone = paths.filter((_, i) => !kept.has(i)).map((p) => p.path).sort();
        const options = { defaultRetentionSeconds: 0, graceSeconds: s.graceSeconds, cache, now };

        const dry = await runGarbageCollection(m.db.kysely, m.store, { ...options, dryRun: true });
        assert.deepEqual(dry.caches[0].store_paths, expectedGone, 'the dry run names exactly what will go');
        assert.equal((await remaining(m.db, cache.id)).size, paths.length, 'a dry run deletes nothing');

        const report = await runGarbageCollection(m.db.kysely, m.store, options);
        assert.deepEqual([...report.caches[0].store_paths].sort(), expectedGone);
        const left = await remaining(m.db, cache.id);
        for (const [hash, refs] of left) {
          for (const ref of refs) assert.ok(left.has(ref), `${hash} remains but its reference ${ref} was collected`);
        }
        paths.forEach((p, i) => {
          if (left.has(p.hash)) return;
          assert.ok(s.ageSeconds[i] > Math.max(s.retentionSeconds, s.graceSeconds) && s.retentionSeconds > 0, `node ${i} was collected unexpired`);
          assert.ok(!kept.has(i), `node ${i} was collected though a kept path or a pin reaches it`);
        });
        assert.equal(left.size, kept.size);
      }),
      { numRuns: Number(process.env.LOFT_GC_PROPERTY_RUNS ?? 60) },
    );
  });
}
