// Production topology on one machine: three `loft serve --mode api` processes sharing one
// PostgreSQL database and one S3 bucket. Pushes race through different replicas, a chunk-protocol
// push is spread over all three, a replica is killed mid-push, and the real `nix` pulls everything
// back through a third replica with signatures required.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import path from 'node:path';
import { sql } from 'kysely';
import { LoftClient } from '../../src/client/http.ts';
import { ChunkUploader } from '../../src/client/chunk-uploader.ts';
import { pushNar } from '../../src/client/push-nar.ts';
import { ChunkWorkerPool } from '../../src/compression/pool.ts';
import { openDatabase } from '../../src/db/dialect.ts';
import { S3BlobStore } from '../../src/storage/s3.ts';
import { freshDatabase } from '../helpers/databases.ts';
import { nixUnavailable, postgresUnavailable, skipUnless } from '../helpers/env.ts';
import { deterministicBytes, makeNar, randomStorePath, sha256Nix32 } from '../helpers/nar.ts';
import { buildCorpus, closureOf, nix, nixEnv, writeNetrc } from '../helpers/nix.ts';
import { loftEnv, runLoft, spawnLoft, waitFor, waitHealthy, freePort, type LoftProcess } from '../helpers/processes.ts';
import { startS3rver } from '../helpers/s3rver.ts';
import { makeTempDir } from '../helpers/tmp.ts';
import { MIGRATION_NAMES } from '../../src/db/migrate.ts';

/** A LoftClient whose calls go to the replicas in turn: one push, spread over every server. */
class RoundRobinClient extends LoftClient {
  #next = 0;
  constructor(private readonly replicas: LoftClient[]) {
    super({ endpoint: replicas[0].endpoint });
  }
  #pick(): LoftClient {
    return this.replicas[this.#next++ % this.replicas.length];
  }
  override missingChunks(...a: Parameters<LoftClient['missingChunks']>) {
    return this.#pick().missingChunks(...a);
  }
  override uploadChunks(...a: Parameters<LoftClient['uploadChunks']>) {
    return this.#pick().uploadChunks(...a);
  }
  override commitNar(...a: Parameters<LoftClient['commitNar']>) {
    return this.#pick().commitNar(...a);
  }
}

test('three api replicas on one PostgreSQL + S3: racing pushes, a killed replica, a verified pull', { timeout: 300_000 }, async (t) => {
  if (!skipUnless(t, nixUnavailable())) return;
  if (!skipUnless(t, await postgresUnavailable())) return;
  const started = Date.now();
  const corpus = await buildCorpus(['all', 'big']);
  // A path of its own for the kill, so no earlier push has stored its chunks.
  const victim = await buildCorpus(['big'], { salt: 'replicas-kill', bigMiB: 128 });
  const tmp = await makeTempDir('loft-replicas-');
  const database = await freshDatabase('postgres', tmp.path);
  const s3 = await startS3rver();
  const procs: LoftProcess[] = [];
  const db = openDatabase({ url: database.url });
  t.after(async () => {
    for (const p of procs) await p.kill('SIGKILL');
    await db.close();
    await s3.stop();
    await database.drop();
    await tmp.cleanup();
  });
  const adminToken = `root-${randomBytes(12).toString('hex')}`;
  // One token secret for all replicas: a token issued by one verifies on the others.
  const tokenSecret = randomBytes(32).toString('base64');
  const replicaEnv = (i: number) =>
    loftEnv({ databaseUrl: database.url, dataDir: path.join(tmp.path, `replica-${i}`), adminToken, tokenSecret, s3: s3.config });

  // The release step and three replicas start at once: the migration lock serialises them.
  const ports = [await freePort(), await freePort(), await freePort()];
  const migrating = runLoft({ mode: 'migrate', env: replicaEnv(0) });
  const replicas = ports.map((port, i) => spawnLoft({ mode: 'api', env: replicaEnv(i + 1), port }));
  procs.push(...replicas);
  const migrated = await migrating;
  assert.equal(migrated.code, 0, migrated.output);
  await Promise.all(replicas.map((r) => waitHealthy(r, 60_000)));
  const migrations = await sql<{ name: string }>`select name from kysely_migration order by name`.execute(db.kysely);
  assert.deepEqual(migrations.rows.map((r) => r.name), MIGRATION_NAMES);
  t.diagnostic(`migrate + 3 replicas healthy: ${Date.now() - started} ms`);
  const [r1, r2, r3] = replicas;

  const created = await fetch(`${r1.url}/_api/v1/cache-config/prod`, {
    method: 'POST',
    headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' },
    body: JSON.stringify({ is_public: true }),
  });
  const createdText = await created.text();
  assert.equal(created.status, 201, createdText);
  const publicKey = (JSON.parse(createdText) as { public_key: string }).public_key;
  const netrc = await writeNetrc(tmp.path, r1.url, adminToken); // one host, 127.0.0.1, for every replica
  const nixCopy = (replica: LoftProcess, paths: string[], tag: string) =>
    nix(['copy', '--to', `${replica.url}/prod?compression=zstd`, '--option', 'netrc-file', netrc, ...paths], nixEnv(path.join(tmp.path, tag)));

  // (a) The same closure pushed concurrently through two replicas.
  let t0 = Date.now();
  await Promise.all([nixCopy(r1, [corpus.all, corpus.big], 'push-1'), nixCopy(r2, [corpus.all, corpus.big], 'push-2')]);
  t.diagnostic(`(a) two concurrent nix copy of the ${(await closureOf([corpus.all, corpus.big])).length}-path closure (incl. 100 MiB): ${Date.now() - t0} ms`);

  // (b) Chunk-protocol pushes whose calls alternate between the three replicas.
  t0 = Date.now();
  const clients = replicas.map((r) => new LoftClient({ endpoint: r.url, token: adminToken }));
  const shared4 = deterministicBytes('replicas-shared', 4 * 1024 * 1024);
  const chunked: { path: string; narHash: string }[] = [];
  for (const i of [1, 2, 3]) {
    // Each NAR shares 4 MiB with the others, so later pushes deduplicate against chunks uploaded through other replicas.
    const nar = await makeNar({ shared: shared4, own: deterministicBytes(`replicas-own-${i}`, 1024 * 1024) });
    const sp = randomStorePath(`chunked-${i}`);
    const meta = { storePath: sp.path, narHash: sha256Nix32(nar), narSize: nar.length, references: [], sigs: [] };
    const client = new RoundRobinClient(clients);
    // Small requests, three at a time: each NAR's chunks are spread over the replicas.
    const pool = new ChunkWorkerPool({ threads: 1 });
    const uploader = new ChunkUploader(client, 'prod', { requestBytes: 512 * 1024, parallel: 3, pool });
    const res = await pushNar(client, 'prod', meta, Readable.from([nar]), { windowChunks: 8, pool, uploader }).finally(async () => {
      await uploader.close();
      await pool.close();
    });
    assert.equal(res.kind, 'uploaded');
    assert.equal(res.narSize, nar.length);
    if (i > 1) assert.ok(res.dedupedBytes >= 3 * 1024 * 1024, `push ${i} deduplicated only ${res.dedupedBytes} bytes`);
    chunked.push({ path: sp.path, narHash: meta.narHash });
  }
  t.diagnostic(`(b) 3 chunk-protocol pushes spread over 3 replicas: ${Date.now() - t0} ms`);

  const chunkObjects = async () => {
    const keys = new Set<string>();
    for await (const o of new S3BlobStore(s3.config).list('packs/')) keys.add(o.key);
    return keys;
  };
  const chunkRows = () =>
    db.kysely.selectFrom('chunks as c').innerJoin('packs as p', 'p.id', 'c.pack_id').select(['c.hash', 'p.storage_key']).execute();
  const packRows = () => db.kysely.selectFrom('packs').select('storage_key').execute();
  {
    const rows = await chunkRows();
    const objects = await chunkObjects();
    assert.equal(new Set(rows.map((r) => r.hash)).size, rows.length, 'a chunk is recorded twice');
    assert.equal(rows.length, Number((await db.kysely.selectFrom('chunks').select(({ fn }) => fn.countAll<number>().as('n')).executeTakeFirstOrThrow()).n));
    const packs = await packRows();
    assert.equal(objects.size, packs.length, 'S3 pack objects and pack rows differ: an upload left an object behind');
    for (const r of rows) assert.ok(objects.has(r.storage_key), r.storage_key);
  }

  // (c) A replica killed while a big push runs through it; the push is redone through another replica.
  const baseline = (await chunkRows()).length;
  t0 = Date.now();
  const doomed = nixCopy(r2, [victim.big], 'push-doomed');
  doomed.catch(() => {});
  // Chunk rows appear a pack (32 MiB) at a time: the first one is recorded with most of the 128 MiB still to come.
  await waitFor('the push to be storing chunks', async () => (await chunkRows()).length > baseline, 60_000, 25);
  await r2.kill('SIGKILL');
  const storedBeforeKill = (await chunkRows()).length - baseline;
  await assert.rejects(doomed, /failed/);
  const retry = Date.now();
  await nixCopy(r1, [victim.big], 'push-retry');
  t.diagnostic(
    `(c) replica 2 killed after ${storedBeforeKill} new chunks (${Date.now() - t0} ms in); nix copy through replica 1 then took ${Date.now() - retry} ms`,
  );

  // Pull everything through replica 3 into a fresh store, signatures required.
  t0 = Date.now();
  const roots = [corpus.all, corpus.big, victim.big, ...chunked.map((c) => c.path)];
  const storeDir = path.join(tmp.path, 'store');
  const pullEnv = nixEnv(path.join(tmp.path, 'pull'));
  await nix(
    ['--store', storeDir, '-r', ...roots, '--option', 'substituters', `${r3.url}/prod`,
      '--option', 'trusted-public-keys', publicKey, '--option', 'require-sigs', 'true'],
    pullEnv,
    'nix-store',
  );
  await nix(['store', 'verify', '--store', storeDir, '--trusted-public-keys', publicKey, '-r', ...roots], pullEnv);
  const closure = await closureOf([corpus.all, corpus.big, victim.big]);
  const pulled = (await nix(['--store', storeDir, '-qR', ...roots], pullEnv, 'nix-store')).split('\n');
  assert.deepEqual(pulled.sort(), [...closure, ...chunked.map((c) => c.path)].sort());
  t.diagnostic(`pull + verify of ${pulled.length} paths through replica 3: ${Date.now() - t0} ms`);

  // Stored once: one row per chunk hash, one NAR row per distinct NAR, every chunk row backed by an object.
  const rows = await chunkRows();
  assert.equal(new Set(rows.map((r) => r.hash)).size, rows.length);
  const narHashes = new Set([...(await nix(['-q', '--hash', ...closure], nixEnv(tmp.path), 'nix-store')).split('\n'), ...chunked.map((c) => c.narHash)]);
  const nars = await db.kysely.selectFrom('nars').select('nar_hash').execute();
  assert.equal(nars.length, narHashes.size);
  assert.deepEqual(new Set(nars.map((n) => n.nar_hash)), narHashes);
  const objects = await chunkObjects();
  for (const r of rows) assert.ok(objects.has(r.storage_key), `chunk row without its object: ${r.storage_key}`);
  // A SIGKILL between a pack's PUT and its rows can leave an unreferenced pack (the GC's orphan sweep removes it).
  const packs = await packRows();
  t.diagnostic(`${rows.length} chunk rows in ${packs.length} packs, ${objects.size} pack objects (${objects.size - packs.length} orphaned by the kill)`);
  t.diagnostic(`total ${Date.now() - started} ms`);
});
