// Migration 0004 (packs) on data written in the layout before it: one blob per chunk under
// `chunks/aa/bb/<hash>-<rand>.zst`, rows naming their storage_key. The data is written here the way
// the previous ChunkStore and commitNar wrote it, into a database migrated only up to 0003; then the
// server migrates and must serve every byte and deduplicate against the old chunks; GC then merges
// the old blobs into packs.
import { Readable } from 'node:stream';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { Migrator, type Migration } from 'kysely';
import { openDatabase } from '../../../src/db/dialect.ts';
import { initialSchema } from '../../../src/db/migrations/0001_initial.ts';
import { leases } from '../../../src/db/migrations/0002_leases.ts';
import { chunkStorageKeyIndex } from '../../../src/db/migrations/0003_chunk_storage_key.ts';
import { createBlobStore } from '../../../src/storage/index.ts';
import { chunkBuffer } from '../../../src/chunking/fastcdc.ts';
import { zstdCompressSync } from '../../../src/compression/zstd.ts';
import { SigningKey } from '../../../src/nix/signing.ts';
import { listNar } from '../../../src/nix/nar/listing.ts';
import { runGarbageCollection } from '../../../src/gc/run.ts';
import { DB_KINDS } from '../../helpers/databases.ts';
import { postgresUnavailable, skipUnless } from '../../helpers/env.ts';
import { deterministicBytes, makeNar, randomStorePath, sha256Nix32, uploadPathMeta } from '../../helpers/nar.ts';
import { startTestServer } from '../../helpers/server.ts';
import { test } from 'node:test';
import type { StorageConfig } from '../../../src/storage/index.ts';

const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

/** The data of `nars` in cache 'old', exactly as the one-blob-per-chunk code stored it. */
async function writeOldLayout(databaseUrl: string, storage: StorageConfig, nars: { nar: Buffer; path: string }[]) {
  const db = openDatabase({ url: databaseUrl, poolSize: 2, statementTimeoutMs: 30_000 });
  try {
    const upTo0003: Record<string, Migration> = {
      '0001_initial': initialSchema(db.kind),
      '0002_leases': leases,
      '0003_chunk_storage_key': chunkStorageKeyIndex,
    };
    const { error } = await new Migrator({ db: db.kysely, provider: { getMigrations: async () => upTo0003 } }).migrateToLatest();
    if (error) throw error;
    const blobs = await createBlobStore(storage);
    const k = db.kysely as never as import('kysely').Kysely<any>;
    // The cache and path rows as schema 0003 had them (today's services write tables added later).
    const key = SigningKey.generate('loft-old-1');
    const cache = await k
      .insertInto('caches')
      .values({
        name: 'old',
        signing_key: key.toString(),
        public_key: key.publicKey().toString(),
        is_public: 1,
        priority: 41,
        store_dir: '/nix/store',
        upstream_key_names: '[]',
        retention_seconds: null,
        created_at: Date.now(),
      })
      .returning('id')
      .executeTakeFirstOrThrow();
    for (const { nar, path } of nars) {
      const ids: number[] = [];
      const frames: Buffer[] = [];
      for (const data of chunkBuffer(nar)) {
        const h = sha256(data);
        const frame = zstdCompressSync(data, 3);
        frames.push(frame);
        const existing = await k.selectFrom('chunks').select('id').where('hash', '=', h).executeTakeFirst();
        if (existing) {
          ids.push(Number(existing.id));
          continue;
        }
        const key = `chunks/${h.slice(0, 2)}/${h.slice(2, 4)}/${h}-${randomBytes(4).toString('hex')}.zst`;
        await blobs.put(key, frame);
        const row = await k
          .insertInto('chunks')
          .values({ hash: h, size: data.length, stored_size: frame.length, stored_hash: sha256(frame), storage_key: key, created_at: Date.now() })
          .returning('id')
          .executeTakeFirstOrThrow();
        ids.push(Number(row.id));
      }
      const file = Buffer.concat(frames);
      const narRow = await k
        .insertInto('nars')
        .values({
          nar_hash: sha256Nix32(nar),
          nar_size: nar.length,
          file_hash: sha256Nix32(file),
          file_size: file.length,
          chunk_count: ids.length,
          created_at: Date.now(),
        })
        .returning('id')
        .executeTakeFirstOrThrow();
      await k.insertInto('nar_chunks').values(ids.map((chunk_id, seq) => ({ nar_id: narRow.id, seq, chunk_id }))).execute();
      await k
        .insertInto('objects')
        .values({
          cache_id: cache.id,
          store_path_hash: path.slice('/nix/store/'.length, '/nix/store/'.length + 32),
          store_path: path,
          nar_id: narRow.id,
          references: '[]',
          deriver: null,
          ca: null,
          client_sigs: '[]',
          server_sig: null,
          server_sig_key: null,
          created_by: 'old',
          created_at: Date.now(),
          last_accessed_at: Date.now(),
        })
        .execute();
    }
  } finally {
    await db.close();
  }
}

for (const kind of DB_KINDS) {
  test(`data stored one blob per chunk is served and deduplicated against after migration 0004, then converted by GC (${kind})`, { timeout: 120_000 }, async (t) => {
    if (kind === 'postgres' && !skipUnless(t, await postgresUnavailable())) return;
    const shared = deterministicBytes('migrated-shared', 1_200_000);
    const old = [
      await makeNar({ data: shared, tag: 'first' }),
      await makeNar({ bin: { exec: deterministicBytes('migrated-exec', 300_000) }, link: { link: 'bin' } }),
    ].map((nar) => ({ nar, ...randomStorePath('old') }));
    const server = await startTestServer({
      db: kind,
      toml: { storage: { pack_target_size: 1024 * 1024 } }, // so that the test's few MB are worth merging
      prepare: (url, storage) => writeOldLayout(url, storage, old),
    });
    t.after(() => server.close());
    const k = server.services.kysely;

    const chunks = await k.selectFrom('chunks as c').innerJoin('packs as p', 'p.id', 'c.pack_id').select(['p.storage_key', 'c.pack_offset', 'c.stored_size', 'p.size']).execute();
    assert.ok(chunks.length > 10);
    for (const c of chunks) {
      assert.match(c.storage_key, /^chunks\/[0-9a-f]{2}\/[0-9a-f]{2}\/[0-9a-f]{64}-[0-9a-f]{8}\.zst$/, 'the old blob became a one-frame pack');
      assert.equal(c.pack_offset, 0);
      assert.equal(Number(c.size), c.stored_size);
    }

    for (const { nar, hash } of old) {
      const info = await (await server.fetch(`/old/${hash}.narinfo`)).text();
      const url = /^URL: (.*)$/m.exec(info)![1];
      const fileHash = /^FileHash: (.*)$/m.exec(info)![1];
      const zst = Buffer.from(await (await server.fetch(`/old/${url}`)).arrayBuffer());
      assert.equal(sha256Nix32(zst), fileHash, 'the .nar.zst is byte for byte what the old layout served');
      const plain = await server.fetch(`/old/nar/${sha256Nix32(nar).slice(7)}.nar`);
      assert.ok(Buffer.from(await plain.arrayBuffer()).equals(nar));
      const ls = await server.fetch(`/old/${hash}.ls`);
      assert.deepEqual(await ls.json(), await listNar(Readable.from([nar])), 'a listing parsed from the old chunks');
    }

    // A new push sharing most of an old NAR stores only what is new, in one pack.
    await server.createCache('new');
    const fresh = await makeNar({ data: shared, tag: 'second' });
    const sp = randomStorePath('new');
    const res = await server.fetch('/_api/v1/upload-path', {
      method: 'PUT',
      token: server.adminToken,
      headers: { 'content-type': 'application/octet-stream', 'x-loft-nar-info': JSON.stringify(uploadPathMeta('new', sp.path, fresh)) },
      body: fresh,
    });
    const pushed = await res.json();
    assert.equal(res.status, 200, JSON.stringify(pushed));
    assert.ok(pushed.new_chunk_bytes < 300_000, `only the changed chunks are new (${pushed.new_chunk_bytes} bytes)`);
    const plain = await server.fetch(`/new/nar/${sha256Nix32(fresh).slice(7)}.nar`, { token: server.adminToken });
    assert.ok(Buffer.from(await plain.arrayBuffer()).equals(fresh), 'a NAR mixing old blobs and a new pack');

    // GC converts the old layout: the one-frame packs are small, so they are merged into a full-size pack,
    // and the old blobs are deleted a pass later; every NAR is still served, byte for byte.
    const gc = (now: number) => runGarbageCollection(k, server.services.chunkStore, { defaultRetentionSeconds: 0, graceSeconds: 0, now });
    const first = await gc(Date.now() + 1000);
    assert.equal(first.orphan_blobs, 0);
    assert.equal(first.chunks, 0);
    assert.ok(first.packs_rewritten >= chunks.length, `${first.packs_rewritten} packs rewritten`);
    await gc(Date.now() + 5000);
    let oldBlobs = 0;
    for await (const _ of (await createBlobStore(server.config.storage)).list('chunks/')) oldBlobs++;
    assert.equal(oldBlobs, 0, 'the one-blob-per-chunk objects are gone');
    for (const { nar, hash } of old) {
      const again = await server.fetch(`/old/nar/${sha256Nix32(nar).slice(7)}.nar`);
      assert.ok(Buffer.from(await again.arrayBuffer()).equals(nar));
      const info = await (await server.fetch(`/old/${hash}.narinfo`)).text();
      const zst = Buffer.from(await (await server.fetch(`/old/${/^URL: (.*)$/m.exec(info)![1]}`)).arrayBuffer());
      assert.equal(sha256Nix32(zst), /^FileHash: (.*)$/m.exec(info)![1]);
    }
  });
}
