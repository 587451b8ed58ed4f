// A server killed with SIGKILL in the middle of a push (packs being written and recorded) leaves
// nothing visible, and GC removes every leftover: recorded packs of chunks no NAR uses, packs
// written but not recorded, temporary files. SQLite + disk and PostgreSQL + S3, as production runs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { openDatabase } from '../../../src/db/dialect.ts';
import { createBlobStore, type StorageConfig } from '../../../src/storage/index.ts';
import { LocalBlobStore } from '../../../src/storage/local.ts';
import { ChunkWorkerPool } from '../../../src/compression/pool.ts';
import { ChunkStore } from '../../../src/core/chunk-store.ts';
import { runGarbageCollection } from '../../../src/gc/run.ts';
import { DB_KINDS, freshDatabase } from '../../helpers/databases.ts';
import { postgresUnavailable, skipUnless } from '../../helpers/env.ts';
import { deterministicBytes, makeNar, randomStorePath, uploadPathMeta } from '../../helpers/nar.ts';
import { loftEnv, startLoft, waitFor, type LoftProcess } from '../../helpers/processes.ts';
import { startS3rver } from '../../helpers/s3rver.ts';
import { makeTempDir } from '../../helpers/tmp.ts';

const MiB = 1024 * 1024;

async function filesUnder(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true }).catch(() => []);
  return entries.filter((e) => e.isFile()).map((e) => path.join(e.parentPath, e.name));
}

for (const kind of DB_KINDS) {
  test(`kill -9 during a push leaves nothing visible, and GC sweeps the leftovers (${kind})`, { timeout: 180_000 }, async (t) => {
    if (kind === 'postgres' && !skipUnless(t, await postgresUnavailable())) return;
    const tmp = await makeTempDir('loft-crash-');
    const database = await freshDatabase(kind, tmp.path);
    const s3 = kind === 'postgres' ? await startS3rver() : undefined;
    let server: LoftProcess | undefined;
    const pool = new ChunkWorkerPool({ threads: 1 });
    const db = openDatabase({ url: database.url, poolSize: 2, statementTimeoutMs: 30_000 });
    t.after(async () => {
      await server?.kill('SIGKILL');
      await pool.close();
      await db.close();
      await s3?.stop();
      await database.drop();
      await tmp.cleanup();
    });
    const storage: StorageConfig = s3 ? s3.config : { type: 'local', path: path.join(tmp.path, 'storage') };
    const adminToken = `root-${randomBytes(8).toString('hex')}`;
    const config = path.join(tmp.path, 'loft.toml');
    // Small packs, so that several are written and recorded while the push runs.
    await writeFile(config, `[storage]\npack_target_size = ${1 * MiB}\n`);
    const env = loftEnv({ databaseUrl: database.url, dataDir: tmp.path, adminToken, tokenSecret: randomBytes(32).toString('base64'), s3: s3?.config });
    server = await startLoft({ mode: 'monolithic', env, config });
    const created = await fetch(`${server.url}/_api/v1/cache-config/main`, {
      method: 'POST',
      headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' },
      body: '{}',
    });
    assert.equal(created.status, 201);

    const nar = await makeNar({ data: deterministicBytes('crash', 40 * MiB) });
    const sp = randomStorePath('crash');
    let sent = 0;
    const body = new ReadableStream<Uint8Array>({
      async pull(controller) {
        if (sent >= nar.length) return controller.close();
        // Slowly enough that the kill lands mid-push, whatever the machine's speed.
        await new Promise((resolve) => setTimeout(resolve, 5));
        controller.enqueue(nar.subarray(sent, sent + 256 * 1024));
        sent += 256 * 1024;
      },
    });
    const pushing = fetch(`${server.url}/_api/v1/upload-path`, {
      method: 'PUT',
      headers: {
        authorization: `Bearer ${adminToken}`,
        'content-type': 'application/octet-stream',
        'x-loft-nar-info': JSON.stringify(uploadPathMeta('main', sp.path, nar)),
      },
      body,
      duplex: 'half',
    } as RequestInit).catch((e: Error) => e);
    const k = db.kysely;
    const count = async (table: 'packs' | 'chunks' | 'nars' | 'objects') =>
      Number((await k.selectFrom(table).select(({ fn }) => fn.countAll().as('n')).executeTakeFirstOrThrow()).n);
    await waitFor('two packs recorded mid-push', async () => (await count('packs')) >= 2, 120_000, 20);
    await server.kill('SIGKILL');
    server = undefined;
    assert.ok((await pushing) instanceof Error || !(await pushing as Response).ok, 'the push did not succeed');
    assert.ok(sent < nar.length, 'killed before the whole NAR was sent');

    // Nothing is visible: no NAR, no path. Every recorded pack's object is there.
    assert.equal(await count('nars'), 0);
    assert.equal(await count('objects'), 0);
    const blobs = await createBlobStore(storage);
    const packRows = await k.selectFrom('packs').select('storage_key').execute();
    for (const p of packRows) assert.ok(await blobs.head(p.storage_key), `recorded pack ${p.storage_key} is durable`);
    const objects = async () => {
      const keys: string[] = [];
      for await (const o of blobs.list('packs/')) keys.push(o.key);
      return keys;
    };
    t.diagnostic(`after the kill: ${packRows.length} recorded packs, ${(await objects()).length} pack objects, ${await count('chunks')} chunk rows`);

    const store = new ChunkStore(k, blobs, pool);
    const gc = (now: number) => runGarbageCollection(k, store, { defaultRetentionSeconds: 0, graceSeconds: 0, now });
    const first = await gc(Date.now() + 1000);
    assert.ok(first.chunks > 0, 'chunks no NAR uses are swept');
    await gc(Date.now() + 2000); // retired packs go a pass later
    assert.equal(await count('chunks'), 0);
    assert.equal(await count('packs'), 0);
    assert.deepEqual(await objects(), [], 'no pack object is left, recorded or not');
    if (blobs instanceof LocalBlobStore) {
      await blobs.sweepTemporaryFiles(0);
      assert.deepEqual(await filesUnder(path.join(tmp.path, 'storage')), [], 'no temporary file is left');
    }
  });
}
