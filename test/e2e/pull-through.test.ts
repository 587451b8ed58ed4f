// Issue 11: a cache pulling through from an upstream made like cache.nixos.org (`nix copy
// --to file://…?compression=xz`, signed by an upstream key, served over HTTP, and over HTTPS by nginx), with the real
// Nix substituting from Loft, on SQLite + disk and PostgreSQL + S3.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { brotliDecompressSync } from 'node:zlib';
import type { AddressInfo } from 'node:net';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import tls from 'node:tls';
import Database from 'better-sqlite3';
import { nixUnavailable, postgresUnavailable, skipUnless } from '../helpers/env.ts';
import { copyToFileCache, generateUpstreamKey, serveFakeUpstream, type FakeUpstream, type UpstreamKeys } from '../helpers/fake-upstream.ts';
import { buildCorpus, closureOf, nix, nixEnv, writeNetrc } from '../helpers/nix.ts';
import { startTestServer, type TestServer } from '../helpers/server.ts';
import { makeTempDir } from '../helpers/tmp.ts';
import { nginxUnavailable, startTlsNginx } from '../helpers/tls-nginx.ts';
import { randomStorePath } from '../helpers/nar.ts';
import { extensionFor } from '../../src/compression/codecs.ts';
import { formatSha256Nix32 } from '../../src/nix/hash.ts';
import { parseNarInfo } from '../../src/nix/narinfo.ts';
import { buildApp } from '../../src/server/app.ts';
import { createServices } from '../../src/server/services.ts';

const SETUPS = [
  { db: 'sqlite', storage: 'local' },
  { db: 'postgres', storage: 's3' },
] as const;

const CORPUS_ARGS = { salt: 'upstream-pull-through', bigMiB: 8 };

interface UpstreamFixture {
  corpus: Record<string, string>;
  closure: string[];
  keys: UpstreamKeys;
  /** The xz binary cache of the whole corpus, as cache.nixos.org serves it. */
  xzDir: string;
  /** The leaf and the tree, uncompressed: tampering with a NAR keeps a valid NAR of the wrong hash. */
  noneDir: string;
  /** Distinct NARs of the closure (two paths of the corpus have the same contents). */
  narCount: number;
}

let fixture: Promise<UpstreamFixture> | undefined;

/** Built once per process: the corpus, an upstream key and the binary caches made from them. */
function upstreamFixture(): Promise<UpstreamFixture> {
  fixture ??= (async () => {
    const dir = (await makeTempDir('loft-upstream-fixture-')).path;
    const corpus = await buildCorpus(['all', 'big', 'leaf', 'tree'], CORPUS_ARGS);
    const keys = await generateUpstreamKey(dir);
    const xzDir = path.join(dir, 'xz');
    const noneDir = path.join(dir, 'none');
    await copyToFileCache(xzDir, [corpus.all, corpus.big], keys, 'xz');
    await copyToFileCache(noneDir, [corpus.leaf, corpus.tree], keys, 'none');
    const closure = await closureOf([corpus.all, corpus.big]);
    const narCount = new Set((await nix(['-q', '--hash', ...closure], nixEnv(dir), 'nix-store')).split('\n')).size;
    return { corpus, closure, keys, xzDir, noneDir, narCount };
  })();
  return fixture;
}

const hashOf = (storePath: string) => path.basename(storePath).slice(0, 32);

/** The NarHash of a NAR file as a narinfo's Compression says it is compressed, decoded by xz, zstd or zlib (not by Loft). */
function narHashOf(file: Buffer, compression: string): string {
  const decode: Record<string, (b: Buffer) => Buffer> = {
    none: (b) => b,
    xz: (b) => execFileSync('xz', ['-dc'], { input: b, maxBuffer: 1 << 30 }),
    zstd: (b) => execFileSync('zstd', ['-dcq'], { input: b, maxBuffer: 1 << 30 }),
    br: (b) => brotliDecompressSync(b),
  };
  return formatSha256Nix32(createHash('sha256').update(decode[compression](file)).digest());
}

async function until(what: string, cond: () => Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

async function countRows(server: TestServer, table: 'nars' | 'objects', where?: (q: any) => any): Promise<number> {
  let q: any = server.services.kysely.selectFrom(table).select(({ fn }: any) => fn.countAll().as('n'));
  if (where) q = where(q);
  return Number((await q.executeTakeFirstOrThrow()).n);
}

function pull(server: TestServer, tmp: string, name: string, cache: string, roots: string[], trustedKey: string, extra: string[] = []) {
  return nix(
    ['--store', path.join(tmp, `store-${name}`), '-r', ...roots, '--option', 'substituters', `${server.url}/${cache}`,
      '--option', 'trusted-public-keys', trustedKey, '--option', 'require-sigs', 'true', ...extra],
    nixEnv(path.join(tmp, `pull-${name}`)),
    'nix-store',
  );
}

async function verifyStore(tmp: string, name: string, roots: string[], key: string, closure: string[]): Promise<void> {
  const env = nixEnv(path.join(tmp, `verify-${name}`));
  const store = path.join(tmp, `store-${name}`);
  await nix(['store', 'verify', '--store', store, '--trusted-public-keys', key, '-r', ...roots], env);
  const pulled = (await nix(['--store', store, '-qR', ...roots], env, 'nix-store')).split('\n');
  assert.deepEqual(pulled.sort(), [...closure].sort());
}

const upstreamOf = (up: FakeUpstream, keys: UpstreamKeys, extra: Record<string, unknown> = {}) => ({
  url: up.url,
  public_keys: [keys.publicKey],
  ...extra,
});

for (const { db, storage } of SETUPS) {
  test(`nix substitutes through Loft from an xz upstream, then from Loft alone (${db} + ${storage})`, { timeout: 600_000 }, async (t) => {
    if (!skipUnless(t, nixUnavailable())) return;
    if (db === 'postgres' && !skipUnless(t, await postgresUnavailable())) return;
    const f = await upstreamFixture();
    const roots = [f.corpus.all, f.corpus.big];
    const up = await serveFakeUpstream(f.xzDir);
    const server = await startTestServer({ db, storage });
    const tmp = await makeTempDir('loft-e2e-upstream-');
    t.after(async () => {
      await up.close();
      await server.close();
      await tmp.cleanup();
    });
    const loftKey = await server.createCache('proxy', { is_public: true, upstreams: [upstreamOf(up, f.keys)] });

    // (a) Trusting only Loft's key: every narinfo is re-signed by the cache.
    await pull(server, tmp.path, 'a', 'proxy', roots, loftKey);
    await verifyStore(tmp.path, 'a', roots, loftKey, f.closure);
    assert.equal(up.count(/^\/nar\//), f.narCount, 'each NAR fetched from the upstream once');
    const fromUpstream = (q: any) => q.where('upstream', '=', up.url);
    await until('every pulled path recorded', async () => (await countRows(server, 'objects', fromUpstream)) === f.closure.length);
    assert.equal(await countRows(server, 'nars'), f.narCount);

    // (b) Trusting only the upstream's key (its signatures are kept), through a second cold
    // cache: the NARs Loft already holds are not fetched again, nor stored twice.
    await server.createCache('proxy-b', { is_public: true, upstreams: [upstreamOf(up, f.keys)] });
    await pull(server, tmp.path, 'b', 'proxy-b', roots, f.keys.publicKey);
    await verifyStore(tmp.path, 'b', roots, f.keys.publicKey, f.closure);
    assert.equal(up.count(/^\/nar\//), f.narCount, 'no NAR fetched twice');
    assert.equal(await countRows(server, 'nars'), f.narCount);

    // An upstream outage: what was pulled keeps being served, by both keys.
    await up.close();
    await pull(server, tmp.path, 'c', 'proxy', roots, loftKey);
    await verifyStore(tmp.path, 'c', roots, loftKey, f.closure);
    await pull(server, tmp.path, 'd', 'proxy-b', roots, f.keys.publicKey);
    await verifyStore(tmp.path, 'd', roots, f.keys.publicKey, f.closure);
  });

  test(`pull-through refuses what it cannot verify and survives a broken upstream (${db} + ${storage})`, { timeout: 600_000 }, async (t) => {
    if (!skipUnless(t, nixUnavailable())) return;
    if (db === 'postgres' && !skipUnless(t, await postgresUnavailable())) return;
    const f = await upstreamFixture();
    const server = await startTestServer({ db, storage, toml: { upstream: { timeout_ms: 1500, negative_ttl_seconds: 600 } } });
    const tmp = await makeTempDir('loft-e2e-upstream-');
    const upstreams: FakeUpstream[] = [];
    const upstream = async (dir: string) => {
      const up = await serveFakeUpstream(dir);
      upstreams.push(up);
      return up;
    };
    t.after(async () => {
      for (const up of upstreams) await up.close();
      await server.close();
      await tmp.cleanup();
    });
    const leaf = hashOf(f.corpus.leaf);
    const tree = hashOf(f.corpus.tree);
    const narinfo = (cache: string, hash: string) => server.fetch(`/${cache}/${hash}.narinfo`);
    const nothingStored = async (cache: string) => {
      const id = (await server.services.caches.get(cache)).id;
      assert.equal(await countRows(server, 'objects', (q: any) => q.where('cache_id', '=', id)), 0);
    };
    /** A path no subtest has pulled, in an upstream of its own: its NAR can only come from there. */
    const freshPath = async (name: string, bytes: number, compression: 'xz' | 'none' = 'xz') => {
      const src = path.join(tmp.path, `fresh-${name}`);
      await writeFile(src, randomBytes(bytes)); // incompressible: the xz file is as long as the NAR
      const storePath = await nix(['--add', src], nixEnv(tmp.path), 'nix-store');
      const dir = path.join(tmp.path, `fresh-${name}-cache`);
      await copyToFileCache(dir, [storePath], f.keys, compression);
      return { storePath, dir };
    };
    let caches = 0;
    const cacheOver = async (up: FakeUpstream, extra: Record<string, unknown> = {}) => {
      const name = `c${++caches}`;
      const key = await server.createCache(name, { is_public: true, upstreams: [upstreamOf(up, f.keys, extra)] });
      return { name, key };
    };

    await t.test('a narinfo with a bad signature is treated as absent', async () => {
      const up = await upstream(f.xzDir);
      up.mode = 'bad-signature';
      const c = await cacheOver(up);
      assert.equal((await narinfo(c.name, leaf)).status, 404);
      assert.equal(up.count(/\.narinfo$/), 1);
      await nothingStored(c.name);
      await assert.rejects(pull(server, tmp.path, 'bad-sig', c.name, [f.corpus.leaf], c.key), /don't know how to build|cannot|unable/i);
    });

    await t.test('an unsigned narinfo whose CA field proves its path is accepted', async () => {
      const src = path.join(tmp.path, 'ca-src');
      await mkdir(src, { recursive: true });
      await writeFile(path.join(src, 'content'), `fixed-output source ${randomStorePath().hash}\n`);
      const caPath = await nix(['--add-fixed', '--recursive', 'sha256', src], nixEnv(tmp.path), 'nix-store');
      const dir = path.join(tmp.path, 'ca-cache');
      await copyToFileCache(dir, [caPath], undefined, 'xz');
      const up = await upstream(dir);
      const c = await cacheOver(up);
      const text = await (await narinfo(c.name, hashOf(caPath))).text();
      assert.match(text, /^CA: fixed:r:sha256:/m);
      assert.equal(parseNarInfo(text).sigs.length, 1, "only the cache's own signature");
      await pull(server, tmp.path, 'ca', c.name, [caPath], c.key);
      await verifyStore(tmp.path, 'ca', [caPath], c.key, [caPath]);
    });

    await t.test('a tampered NAR is refused (cut short once streaming), refused by Nix, and nothing is stored', async () => {
      const flip = (from: string, to: string) => (b: Buffer) => {
        const at = b.lastIndexOf(from);
        return Buffer.concat([b.subarray(0, at), Buffer.from(to), b.subarray(at + from.length)]);
      };
      for (const [dir, storePath, tamper, streamed] of [
        // Uncompressed and valid, of the wrong hash: the leaf's one piece is refused before a byte is sent…
        [f.noneDir, f.corpus.leaf, flip('single-file', 'SINGLE-file'), false],
        // …the tree's last piece is held back until the hash is known, so the response is cut short.
        [f.noneDir, f.corpus.tree, flip('19999', '19998'), true],
        // xz with flipped bytes: it does not decompress.
        [f.xzDir, f.corpus.leaf, undefined, false],
        // The same NAR compressed again: a file of another length than the narinfo's FileSize.
        [f.xzDir, f.corpus.leaf, (b: Buffer) => execFileSync('xz', ['-1', '-c'], { input: execFileSync('xz', ['-dc'], { input: b }) }), false],
      ] as const) {
        const up = await upstream(dir);
        const c = await cacheOver(up);
        const res = await narinfo(c.name, hashOf(storePath));
        assert.equal(res.status, 200);
        const info = parseNarInfo(await res.text());
        up.mode = 'tamper-nar';
        up.tamperNar = tamper;
        // Sent in paced 4 KiB pieces, the streamed NAR arrives in several reads, whatever their size.
        if (streamed) up.slowDelayMs = 1;
        const nar = await server.fetch(`/${c.name}/${info.url}`);
        if (streamed) {
          assert.equal(nar.status, 200);
          assert.equal(Number(nar.headers.get('content-length')), info.narSize);
          let received = 0;
          await assert.rejects(
            (async () => {
              for await (const piece of nar.body!) received += piece.length;
            })(),
            'the body is aborted',
          );
          assert.ok(received < info.narSize, `received ${received} of ${info.narSize} bytes`);
        } else {
          assert.equal(nar.status, 503);
          assert.match(await nar.text(), /could not be fetched from its upstream/);
        }
        assert.equal(await server.services.kysely.selectFrom('nars').select('id').where('nar_hash', '=', info.narHash).executeTakeFirst(), undefined);
        await nothingStored(c.name);
        await assert.rejects(pull(server, tmp.path, `tampered-${caches}`, c.name, [storePath], c.key));
        await nothingStored(c.name);
      }
    });

    await t.test('100 concurrent requests for a missing path make one upstream request', async () => {
      const up = await upstream(f.xzDir);
      const c = await cacheOver(up);
      const texts = await Promise.all(Array.from({ length: 100 }, async () => {
        const res = await narinfo(c.name, tree);
        assert.equal(res.status, 200);
        return res.text();
      }));
      assert.equal(new Set(texts).size, 1);
      assert.equal(up.count(new RegExp(`^/${tree}\\.narinfo$`)), 1);
      const info = parseNarInfo(texts[0]);
      assert.equal(info.compression, 'xz', "the upstream's file is passed on as it is");
      const nars = await Promise.all(Array.from({ length: 100 }, async () => {
        const res = await server.fetch(`/${c.name}/${info.url}`);
        assert.equal(res.status, 200);
        return narHashOf(Buffer.from(await res.arrayBuffer()), info.compression);
      }));
      assert.deepEqual(new Set(nars), new Set([info.narHash]));
      assert.equal(up.count(/^\/nar\//), 1);
      await until('the NAR to be stored, verified against its NarHash', async () =>
        (await server.services.kysely.selectFrom('nars').select('nar_hash').where('nar_hash', '=', info.narHash).executeTakeFirst()) !== undefined);
    });

    await t.test('two replicas on one database: the NAR is fetched and ingested once', async () => {
      const replica = await createServices(server.config);
      const app = await buildApp(replica, { logger: false });
      await app.listen({ host: '127.0.0.1', port: 0 });
      const other = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
      try {
        const up = await upstream(f.xzDir);
        const c = await cacheOver(up);
        // The big path: no earlier subtest brought its NAR to this server.
        const big = hashOf(f.corpus.big);
        const info = parseNarInfo(await (await narinfo(c.name, big)).text());
        assert.equal((await fetch(`${other}/${c.name}/${big}.narinfo`)).status, 200, 'the other replica reads the lookup from the database');
        up.mode = 'slow';
        up.slowDelayMs = 1; // a few seconds for its 8 MiB
        const first = server.fetch(`/${c.name}/${info.url}`).then(async (r) => Buffer.from(await r.arrayBuffer()));
        await until('the first replica to start the download', async () => up.count(/^\/nar\//) === 1, 10_000);
        // The second waits for the first's ingest and serves its copy: the same NAR in another xz file.
        const second = fetch(`${other}/${c.name}/${info.url}`).then(async (r) => Buffer.from(await r.arrayBuffer()));
        const [a, b] = await Promise.all([first, second]);
        assert.equal(narHashOf(a, 'xz'), info.narHash);
        assert.equal(narHashOf(b, 'xz'), info.narHash, 'both replicas serve the same NAR');
        assert.equal(up.count(/^\/nar\//), 1, 'one upstream download for both replicas');
        assert.equal(await countRows(server, 'nars', (q: any) => q.where('nar_hash', '=', info.narHash)), 1);
      } finally {
        await app.close();
        await replica.close();
      }
    });

    await t.test('a hanging upstream answers 404 after the timeout; a failing one 404 and is asked again', async () => {
      const up = await upstream(f.xzDir);
      const c = await cacheOver(up);
      up.mode = 'hang';
      const started = Date.now();
      assert.equal((await narinfo(c.name, leaf)).status, 404);
      const waited = Date.now() - started;
      assert.ok(waited >= 1400 && waited < 20_000, `answered after ${waited} ms (timeout 1500 ms)`);
      await new Promise((resolve) => setTimeout(resolve, 2100)); // past the in-memory narinfo cache
      up.mode = 'fail';
      assert.equal((await narinfo(c.name, leaf)).status, 404);
      // Errors are not remembered as misses: once the upstream is back, the path is there.
      up.mode = 'normal';
      await until('the narinfo cache to expire', async () => (await narinfo(c.name, leaf)).status === 200, 10_000);
      const metrics = await (await server.fetch('/metrics')).text();
      assert.match(metrics, new RegExp(`loft_upstream_errors_total\\{upstream="${up.url}",reason="timeout"\\} 1`));
      assert.match(metrics, new RegExp(`loft_upstream_errors_total\\{upstream="${up.url}",reason="server_error"\\} 1`));
      assert.match(metrics, new RegExp(`loft_upstream_narinfo_requests_total\\{upstream="${up.url}",result="hit"\\} 1`));

      // A NAR whose upstream hangs mid-way: the response is cut short after the timeout.
      const info = parseNarInfo(await (await narinfo(c.name, leaf)).text());
      up.mode = 'hang';
      const narStarted = Date.now();
      const res = await server.fetch(`/${c.name}/${info.url}`);
      assert.equal(res.status, 503, 'the upstream never sent the headers');
      assert.ok(Date.now() - narStarted < 20_000);
      await nothingStored(c.name);
    });

    // After the hanging upstream's subtest: this one stores the leaf's NAR.
    await t.test('the file a pending narinfo names is served from Loft\'s copy once ingested; Nix pulls with the narinfo it kept', async () => {
      for (const compression of ['xz', 'zstd', 'br', 'none'] as const) {
        // A path of its own: a NAR Loft already holds is served as stored, never as pending.
        const src = path.join(tmp.path, `kept-src-${compression}`);
        await writeFile(src, `${compression} ${randomStorePath().hash}\n`.repeat(5000));
        const storePath = await nix(['--add', src], nixEnv(tmp.path), 'nix-store');
        const hash = hashOf(storePath);
        const dir = path.join(tmp.path, `kept-${compression}`);
        await copyToFileCache(dir, [storePath], f.keys, compression);
        const up = await upstream(dir);
        const c = await cacheOver(up);
        // Nix asks for the narinfo and keeps it in its narinfo cache; path-info fetches no NAR.
        const client = path.join(tmp.path, `kept-client-${compression}`);
        const env = nixEnv(client, [`trusted-public-keys = ${c.key}`]);
        await nix(['path-info', '--store', `${server.url}/${c.name}`, storePath], env);
        const pending = parseNarInfo(await (await narinfo(c.name, hash)).text());
        assert.equal(pending.compression, compression, "the upstream's file is passed on as it is");
        assert.equal(pending.url, `nar/${pending.narHash.slice('sha256:'.length)}.nar${extensionFor(compression)}`);
        const passed = await server.fetch(`/${c.name}/${pending.url}`);
        assert.equal(passed.status, 200);
        assert.equal(narHashOf(Buffer.from(await passed.arrayBuffer()), compression), pending.narHash);
        await until('the NAR to be ingested', async () => parseNarInfo(await (await narinfo(c.name, hash)).text()).url !== pending.url);
        await up.close(); // from now on only Loft's copy can answer

        const kept = await server.fetch(`/${c.name}/${pending.url}`);
        assert.equal(kept.status, 200);
        const body = Buffer.from(await kept.arrayBuffer());
        if (kept.headers.has('content-length')) assert.equal(body.length, Number(kept.headers.get('content-length')));
        assert.equal(narHashOf(body, compression), pending.narHash, `${compression}: the same NAR from Loft's copy`);
        const diskCache = new Database(path.join(client, 'xdg-cache/nix/binary-cache-v6.sqlite'), { readonly: true });
        const cached = diskCache.prepare('select url from NARs where hashPart = ?').get(hash) as { url: string } | undefined;
        diskCache.close();
        assert.equal(cached?.url, pending.url, "Nix's narinfo cache holds the pending narinfo");
        const store = path.join(tmp.path, `store-kept-${compression}`);
        await nix(['--store', store, '-r', storePath, '--option', 'substituters', `${server.url}/${c.name}`, '--option', 'require-sigs', 'true'], env, 'nix-store');
        await verifyStore(tmp.path, `kept-${compression}`, [storePath], c.key, [storePath]);
      }
    });

    await t.test('an upstream miss is remembered for the negative TTL', async () => {
      const up = await upstream(f.noneDir);
      const c = await cacheOver(up);
      const absent = randomStorePath().hash;
      for (let i = 0; i < 3; i++) {
        assert.equal((await narinfo(c.name, absent)).status, 404);
        await new Promise((resolve) => setTimeout(resolve, 2100)); // past the in-memory narinfo cache
      }
      assert.equal(up.count(new RegExp(`^/${absent}\\.narinfo$`)), 1);
    });

    const streamedThrough = [
      { mode: 'slow', size: 512 * 1024, what: 'a slow upstream' },
      { mode: 'chunked', size: 4 << 20, what: 'an upstream that sends no Content-Length (chunked)' },
    ] as const;
    for (const { mode, size, what } of streamedThrough) {
      await t.test(`${what} is streamed through completely`, async () => {
        const p = await freshPath(mode, size);
        const up = await upstream(p.dir);
        up.mode = mode;
        const c = await cacheOver(up);
        await pull(server, tmp.path, mode, c.name, [p.storePath], c.key);
        await verifyStore(tmp.path, mode, [p.storePath], c.key, [p.storePath]);
        assert.equal(up.count(/^\/nar\//), 1);
      });
    }

    await t.test('a client that goes away mid-download does not stop the pull: the NAR is verified and stored', async () => {
      const p = await freshPath('gone', 8 << 20);
      const up = await upstream(p.dir);
      up.mode = 'slow';
      up.slowDelayMs = 1;
      const c = await cacheOver(up);
      const hash = hashOf(p.storePath);
      const info = parseNarInfo(await (await narinfo(c.name, hash)).text());
      const gone = new AbortController();
      const res = await server.fetch(`/${c.name}/${info.url}`, { signal: gone.signal });
      assert.equal(res.status, 200);
      const reader = res.body!.getReader();
      assert.ok(((await reader.read()).value?.length ?? 0) > 0, 'the first bytes arrive');
      gone.abort();
      await until('the NAR to be ingested', async () => parseNarInfo(await (await narinfo(c.name, hash)).text()).url !== info.url);
      await up.close();
      const stored = await server.fetch(`/${c.name}/${info.url}`);
      assert.equal(narHashOf(Buffer.from(await stored.arrayBuffer()), info.compression), info.narHash);
      assert.equal(up.count(/^\/nar\//), 1);
    });

    await t.test('a client that stops reading for longer than the upstream timeout: the download goes on, and the client gets the whole NAR', async () => {
      const p = await freshPath('paused', 24 << 20, 'none');
      const up = await upstream(p.dir);
      const c = await cacheOver(up);
      const hash = hashOf(p.storePath);
      const info = parseNarInfo(await (await narinfo(c.name, hash)).text());
      const res = await server.fetch(`/${c.name}/${info.url}`);
      assert.equal(res.status, 200);
      const reader = res.body!.getReader();
      const pieces: Buffer[] = [Buffer.from((await reader.read()).value!)];
      // Silent for 3 s, longer than the upstream timeout (1.5 s): the download is not held up by it.
      await new Promise((resolve) => setTimeout(resolve, 3_000));
      for (let r = await reader.read(); !r.done; r = await reader.read()) pieces.push(Buffer.from(r.value));
      const body = Buffer.concat(pieces);
      assert.equal(body.length, info.fileSize ?? Number(res.headers.get('content-length')));
      assert.equal(narHashOf(body, info.compression), info.narHash);
      assert.equal(up.count(/^\/nar\//), 1);
      await until('the NAR to be ingested', async () => parseNarInfo(await (await narinfo(c.name, hash)).text()).url !== info.url);
    });

    await t.test('a request that joins a download is streamed the file as it arrives, and cut short with the first if the NAR is refused', async () => {
      const drain = async (res: Response, onPiece: (n: number) => void) => {
        const pieces: Buffer[] = [];
        try {
          for await (const piece of res.body!) {
            pieces.push(Buffer.from(piece));
            onPiece(piece.length);
          }
          return { body: Buffer.concat(pieces) };
        } catch (error) {
          return { body: Buffer.concat(pieces), error };
        }
      };
      for (const tampered of [false, true]) {
        const p = await freshPath(tampered ? 'joined-tampered' : 'joined', 1 << 20, 'none');
        const up = await upstream(p.dir);
        up.mode = tampered ? 'tamper-nar' : 'slow';
        up.slowDelayMs = 4; // 4 KiB pieces: the download takes a second or more
        const c = await cacheOver(up);
        const info = parseNarInfo(await (await narinfo(c.name, hashOf(p.storePath))).text());
        const served = async () => (await server.services.metrics.bytesServed.get()).values[0]?.value ?? 0;
        const servedBefore = await served();
        const head = await server.fetch(`/${c.name}/${info.url}`, { method: 'HEAD' });
        assert.equal(head.status, 200);
        assert.equal(Number(head.headers.get('content-length')), info.narSize);
        assert.equal(await served(), servedBefore, 'a HEAD serves no bytes');
        const first = await server.fetch(`/${c.name}/${info.url}`);
        assert.equal(first.status, 200);
        let firstBytes = 0;
        const firstBody = drain(first, (n) => (firstBytes += n));
        await until('the first client to receive bytes', async () => firstBytes > 0);
        const second = await server.fetch(`/${c.name}/${info.url}`);
        assert.equal(second.status, 200);
        assert.equal(Number(second.headers.get('content-length')), info.narSize);
        let firstBytesThen: number | undefined;
        const secondBody = drain(second, () => (firstBytesThen ??= firstBytes));
        const results = await Promise.all([firstBody, secondBody]);
        assert.ok(firstBytesThen! < 0.9 * info.narSize, `the second client's first bytes came when the first had ${firstBytesThen} of ${info.narSize}`);
        assert.equal(up.count(/^\/nar\//), 1);
        for (const r of results) {
          if (tampered) {
            assert.ok(r.error, 'the body is aborted');
            assert.ok(r.body.length < info.narSize, `received ${r.body.length} of ${info.narSize} bytes`);
          } else {
            assert.equal(r.error, undefined);
            assert.equal(narHashOf(r.body, 'none'), info.narHash);
          }
        }
        if (tampered) await nothingStored(c.name);
        else {
          await until('both responses to be counted as served', async () => (await served()) === servedBefore + 2 * info.narSize);
          await until('the NAR to be ingested', async () => parseNarInfo(await (await narinfo(c.name, hashOf(p.storePath))).text()).url !== info.url);
        }
      }
    });

    await t.test('a private upstream gets its credentials; the API never returns them', async () => {
      const up = await upstream(f.xzDir);
      up.requireAuthorization = 'Bearer s3cr3t-upstream-token';
      const without = await cacheOver(up);
      assert.equal((await narinfo(without.name, leaf)).status, 404);
      const c = await cacheOver(up, { bearer_token: 's3cr3t-upstream-token' });
      assert.equal((await narinfo(c.name, leaf)).status, 200);
      const config = await (await server.fetch(`/_api/v1/cache-config/${c.name}`)).text();
      assert.doesNotMatch(config, /s3cr3t/);
      assert.equal((JSON.parse(config) as { upstreams: Array<{ has_credentials: boolean }> }).upstreams[0].has_credentials, true);
      // Set the list again without credentials: the stored ones are kept for the same URL.
      const patched = await server.fetch(`/_api/v1/cache-config/${c.name}`, {
        method: 'PATCH',
        token: server.adminToken,
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ upstreams: [upstreamOf(up, f.keys, { priority: 10 })] }),
      });
      assert.equal(patched.status, 200);
      assert.doesNotMatch(await patched.text(), /s3cr3t/);
      await new Promise((resolve) => setTimeout(resolve, 2100));
      assert.equal((await narinfo(c.name, tree)).status, 200);
      // netrc-style Basic credentials.
      const basicUp = await upstream(f.xzDir);
      basicUp.requireAuthorization = `Basic ${Buffer.from('nix:pa55word').toString('base64')}`;
      const basic = await cacheOver(basicUp, { basic_auth: 'nix:pa55word' });
      assert.equal((await narinfo(basic.name, leaf)).status, 200);
      await pull(server, tmp.path, 'basic', basic.name, [f.corpus.leaf], basic.key);
    });

    await t.test('a child cache serves its base cache\'s paths, signed by itself, without copying them', async () => {
      const netrc = await writeNetrc(path.join(tmp.path, 'netrc'), server.url, server.adminToken);
      await server.createCache('base', { is_public: false });
      await nix(['copy', '--to', `${server.url}/base?compression=zstd`, '--option', 'netrc-file', netrc, f.corpus.all],
        nixEnv(path.join(tmp.path, 'push-base')));
      const nars = await countRows(server, 'nars');
      const childKey = await server.createCache('child', { is_public: true, upstreams: [{ cache: 'base' }] });
      // Anonymous: the base is private, but the child's access check is the one that applies.
      assert.equal((await narinfo('base', leaf)).status, 401);
      await pull(server, tmp.path, 'child', 'child', [f.corpus.all], childKey);
      const closure = await closureOf([f.corpus.all]);
      await verifyStore(tmp.path, 'child', [f.corpus.all], childKey, closure);
      assert.equal(await countRows(server, 'nars'), nars, 'no NAR data copied');
      const childId = (await server.services.caches.get('child')).id;
      assert.equal(await countRows(server, 'objects', (q: any) => q.where('cache_id', '=', childId).where('upstream', '=', 'cache:base')), closure.length);
    });
  });
}

test('nix substitutes through Loft from an https upstream (nginx over TLS, as cache.nixos.org serves its files)', { timeout: 600_000 }, async (t) => {
  if (!skipUnless(t, nixUnavailable())) return;
  if (!skipUnless(t, nginxUnavailable())) return;
  const f = await upstreamFixture();
  const roots = [f.corpus.all, f.corpus.big];
  const tmp = await makeTempDir('loft-e2e-upstream-tls-');
  const nginx = await startTlsNginx(f.xzDir, tmp.path);
  // This process (the server under test) trusts nginx's certificate, as it would a public CA's.
  const systemCAs = tls.getCACertificates('default');
  tls.setDefaultCACertificates([...systemCAs, nginx.ca.toString()]);
  const server = await startTestServer({ db: 'sqlite', storage: 'local' });
  t.after(async () => {
    tls.setDefaultCACertificates(systemCAs);
    await server.close();
    await nginx.stop();
    await tmp.cleanup();
  });
  const loftKey = await server.createCache('proxy-tls', { is_public: true, upstreams: [{ url: nginx.url, public_keys: [f.keys.publicKey] }] });
  await pull(server, tmp.path, 'tls', 'proxy-tls', roots, loftKey);
  await verifyStore(tmp.path, 'tls', roots, loftKey, f.closure);
  await until('every pulled path recorded', async () => (await countRows(server, 'objects', (q: any) => q.where('upstream', '=', nginx.url))) === f.closure.length);
  assert.equal(await countRows(server, 'nars'), f.narCount);
});
