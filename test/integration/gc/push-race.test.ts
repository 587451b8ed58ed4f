// Garbage collection never races a push: GC runs back to back while several pushes run, each
// longer than the grace period, with a retention of one second. Each push uploads a chain of
// paths (each refers to the previous one), alternating `nix copy`'s two steps (NAR PUT, then
// narinfo PUT) and the chunk protocol's (chunks, then commit), pausing inside every step.
// Nothing may be lost: no upload between its steps, no path a pushed path refers to, at any
// depth. One path reuses the NAR of a path deleted before the test (old, unreferenced data
// that GC would free but for the push).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { DB_KINDS } from '../../helpers/databases.ts';
import { postgresUnavailable, skipUnless } from '../../helpers/env.ts';
import { startTestServer, type TestServer } from '../../helpers/server.ts';
import { narInfoText, nixUpload, randomStorePath, sampleNar, sha256Nix32, uploadPathMeta, type Bytes } from '../../helpers/nar.ts';
import { chunksOf, postChunks, postJson, recordsBody } from '../chunks/support.ts';

const GRACE_SECONDS = 2;
/** Pause inside each step and between paths: a step stays well within the grace period, a push does not. */
const STEP_MS = 300;
const PUSHERS = 4;
const CHAIN = 6;

type Pushed = { hash: string; baseName: string; path: string; nar: Bytes };

async function pushNixCopy(server: TestServer, cache: string, nar: Bytes, references: string[]): Promise<Pushed> {
  const up = await nixUpload(nar, { compression: 'zstd', references });
  const put = await server.fetch(`/${cache}/nar/${up.fileName}`, { method: 'PUT', token: server.adminToken, body: new Uint8Array(up.file) });
  assert.equal(put.status, 201, await put.text());
  await sleep(STEP_MS);
  const info = await server.fetch(`/${cache}/${up.storePath.hash}.narinfo`, {
    method: 'PUT',
    token: server.adminToken,
    headers: { 'content-type': 'text/x-nix-narinfo' },
    body: narInfoText(up.narInfo),
  });
  assert.equal(info.status, 204, `narinfo PUT after the NAR PUT: ${await info.text()}`);
  return { ...up.storePath, nar };
}

async function pushChunked(server: TestServer, cache: string, nar: Bytes, references: string[]): Promise<Pushed> {
  const sp = randomStorePath('chunked');
  const chunks = chunksOf(nar);
  const missing = await postJson(server, '/_api/v1/chunks/missing', { cache, chunks: chunks.map((c) => c.hash) }, server.adminToken);
  assert.equal(missing.status, 200);
  const wanted = new Set(((await missing.json()) as { missing: string[] }).missing);
  const upload = chunks.filter((c) => wanted.has(c.hash));
  if (upload.length > 0) {
    const res = await postChunks(server, cache, recordsBody(upload.map((c) => ({ hash: c.hash, size: c.data.length, data: c.data }))), server.adminToken);
    assert.equal(res.status, 200, await res.text());
  }
  await sleep(STEP_MS);
  const meta = uploadPathMeta(cache, sp.path, nar, { references });
  const commit = await postJson(server, '/_api/v1/nar', { ...meta, chunks: chunks.map((c) => c.hash) }, server.adminToken);
  assert.equal(commit.status, 200, `commit after the chunk upload: ${await commit.text()}`);
  return { ...sp, nar };
}

for (const db of DB_KINDS) {
  test(`continuous GC loses nothing of pushes longer than the grace period (${db})`, { timeout: 300_000 }, async (t) => {
    if (db === 'postgres' && !skipUnless(t, await postgresUnavailable())) return;
    const server = await startTestServer({ db, toml: { gc: { interval_seconds: 0, staging_grace_seconds: GRACE_SECONDS } } });
    t.after(() => server.close());
    await server.createCache('race', { retention_period: 1 });

    // Old, unreferenced data: a deleted path's NAR and chunks, older than the grace period.
    const reused = await sampleNar('reused', 300_000);
    const old = await pushChunked(server, 'race', reused, []);
    const del = await postJson(server, '/_api/v1/delete-paths', { cache: 'race', store_path_hashes: [old.hash] }, server.adminToken);
    assert.equal(del.status, 200);
    const past = Date.now() - 3600_000;
    await server.services.kysely.updateTable('nars').set({ created_at: past }).execute();
    await server.services.kysely.updateTable('chunks').set({ created_at: past }).execute();
    await server.services.kysely.updateTable('chunk_stagings').set({ created_at: past }).execute();

    let pushing = true;
    let passes = 0;
    const collector = (async () => {
      while (pushing) {
        const res = await server.fetch('/_api/v1/gc', { method: 'POST', token: server.adminToken });
        assert.equal(res.status, 200, await res.text());
        passes++;
      }
    })();

    const pusher = async (p: number) => {
      const started = Date.now();
      const chain: Pushed[] = [];
      for (let i = 0; i < CHAIN; i++) {
        const prev = chain.at(-1);
        if (prev) {
          // What a client does first: is the reference there? (It is, and that counts as use.)
          const check = await server.fetch(`/race/${prev.hash}.narinfo`, { token: server.adminToken });
          assert.equal(check.status, 200, `path ${i - 1} of pusher ${p} vanished before its referrer was pushed`);
          await check.arrayBuffer();
        }
        const nar = p === 0 && i === 0 ? reused : await sampleNar(`race-${p}-${i}`, 100_000);
        const refs = prev ? [prev.baseName] : [];
        chain.push(await (i % 2 === p % 2 ? pushNixCopy : pushChunked)(server, 'race', nar, refs));
        await sleep(STEP_MS);
      }
      const took = Date.now() - started;
      // Right away (the head was just pushed), the whole chain must be there and whole.
      for (const [i, sp] of chain.entries()) {
        const res = await server.fetch(`/race/nar/${sha256Nix32(sp.nar).slice('sha256:'.length)}.nar`, { token: server.adminToken });
        assert.equal(res.status, 200, `pusher ${p}: path ${i} of the chain was collected`);
        assert.ok(Buffer.from(await res.arrayBuffer()).equals(sp.nar), `pusher ${p}: path ${i} is served whole`);
      }
      return took;
    };
    let durations: number[];
    try {
      durations = await Promise.all(Array.from({ length: PUSHERS }, (_, p) => pusher(p)));
    } finally {
      pushing = false;
      await collector;
    }
    assert.ok(Math.min(...durations) > GRACE_SECONDS * 1000, `every push outlasts the grace period (${durations.join(', ')} ms)`);
    assert.ok(passes >= 3, `GC ran throughout (${passes} passes)`);
  });
}
