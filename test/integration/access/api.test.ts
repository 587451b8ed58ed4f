// Access matrix for the JSON API (/_api/v1): cache configuration, the push and chunk
// protocols, path and stats queries, and token management, for every kind of caller.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { DB_KINDS } from '../../helpers/databases.ts';
import { postgresUnavailable, skipUnless } from '../../helpers/env.ts';
import { randomStorePath, sampleNar, uploadPathMeta, type Bytes } from '../../helpers/nar.ts';
import { startTestServer, type TestServer } from '../../helpers/server.ts';
import {
  PRINCIPALS,
  Principals,
  runMatrix,
  type HttpRequest,
  type Need,
  type RouteCase,
  type Visibility,
} from '../../helpers/tokens.ts';
import { zstdCompressSync } from '../../../src/compression/zstd.ts';
import type { Permission } from '../../../src/token/index.ts';

const CACHES: Record<Visibility, string> = { public: 'pub', private: 'priv', absent: 'nowhere' };
/** Destroyed by the DELETE rows, so kept apart from the shared fixtures. */
const DOOMED: Record<Visibility, string> = { public: 'doomed-pub', private: 'doomed-priv', absent: 'nowhere' };
const on = (...perms: Permission[]): Need => ({ scope: 'cache', perms });
const ADMIN: Need = { scope: 'admin' };

const json = (method: string, path: string, body: unknown): HttpRequest => ({
  method,
  path,
  headers: { 'content-type': 'application/json' },
  body: JSON.stringify(body),
});

interface Fixtures {
  nar: Buffer;
  presentHash: string;
  presentPath: string;
  /** sha256 hex of the present NAR's chunks, in order. */
  chunks: string[];
}

async function uploadPath(server: TestServer, token: string, cache: string, nar: Bytes, storePath: string): Promise<Response> {
  return server.fetch('/_api/v1/upload-path', {
    method: 'PUT',
    token,
    headers: { 'x-loft-nar-info': JSON.stringify(uploadPathMeta(cache, storePath, nar)) },
    body: nar,
  });
}

async function fixtures(server: TestServer): Promise<Fixtures> {
  const nar = await sampleNar(undefined, 200_000);
  const present = randomStorePath('present');
  for (const [name, isPublic] of [['pub', true], ['priv', false], ['doomed-pub', true], ['doomed-priv', false]] as const) {
    await server.createCache(name, { is_public: isPublic });
  }
  for (const cache of [CACHES.public, CACHES.private]) {
    const res = await uploadPath(server, server.adminToken, cache, nar, present.path);
    assert.equal(res.status, 200, await res.text());
  }
  const rows = await server.services.kysely
    .selectFrom('objects as o')
    .innerJoin('nar_chunks as nc', 'nc.nar_id', 'o.nar_id')
    .innerJoin('chunks as c', 'c.id', 'nc.chunk_id')
    .select(['c.hash', 'nc.seq'])
    .where('o.store_path_hash', '=', present.hash)
    .distinct()
    .orderBy('nc.seq')
    .execute();
  return { nar, presentHash: present.hash, presentPath: present.path, chunks: rows.map((r) => r.hash) };
}

/** One record of the chunk upload body: sha256, size, frame length (big-endian u32s), zstd frame. */
function chunkRecord(): Buffer {
  const data = randomBytes(4096);
  const frame = zstdCompressSync(data, 3);
  const header = Buffer.alloc(40);
  createHash('sha256').update(data).digest().copy(header);
  header.writeUInt32BE(data.length, 32);
  header.writeUInt32BE(frame.length, 36);
  return Buffer.concat([header, frame]);
}

function routes(server: TestServer, f: Fixtures): RouteCase[] {
  const absentHash = randomStorePath().hash;
  const root = server.adminToken;
  const pathInfo = (name: string, hash: string, exists: boolean): RouteCase => ({
    name,
    need: on('pull'),
    ok: 200,
    exists,
    leakGroup: 'path-info',
    request: (c) => ({ method: 'GET', path: `/_api/v1/path-info/${c}/${hash}` }),
  });
  return [
    { name: 'GET /_api/v1/cache-config/{cache}', need: on('pull'), ok: 200, request: (c) => ({ method: 'GET', path: `/_api/v1/cache-config/${c}` }) },
    { name: 'GET /_api/v1/caches/{cache}/stats', need: on('pull'), ok: 200, request: (c) => ({ method: 'GET', path: `/_api/v1/caches/${c}/stats` }) },
    { name: 'GET /_api/v1/caches/{cache}/history', need: on('pull'), ok: 200, request: (c) => ({ method: 'GET', path: `/_api/v1/caches/${c}/history?hours=24` }) },
    { name: 'GET /_api/v1/caches/{cache}/pushes', need: on('pull'), ok: 200, request: (c) => ({ method: 'GET', path: `/_api/v1/caches/${c}/pushes` }) },
    { name: 'GET /_api/v1/caches/{cache}/search', need: on('pull'), ok: 200, request: (c) => ({ method: 'GET', path: `/_api/v1/caches/${c}/search?q=present` }) },
    pathInfo('GET /_api/v1/path-info/{cache}/{hash} (present)', f.presentHash, true),
    pathInfo('GET /_api/v1/path-info/{cache}/{hash} (absent)', absentHash, false),
    {
      name: 'POST /_api/v1/get-missing-paths',
      need: on('push'),
      ok: 200,
      request: (c) => json('POST', '/_api/v1/get-missing-paths', { cache: c, store_path_hashes: [f.presentHash, absentHash] }),
    },
    {
      name: 'PUT /_api/v1/upload-path',
      need: on('push'),
      ok: 200,
      request: (c) => ({
        method: 'PUT',
        path: '/_api/v1/upload-path',
        headers: { 'x-loft-nar-info': JSON.stringify(uploadPathMeta(c, randomStorePath('up').path, f.nar)) },
        body: f.nar,
      }),
    },
    {
      name: 'POST /_api/v1/chunks/missing',
      need: on('push'),
      ok: 200,
      request: (c) => json('POST', '/_api/v1/chunks/missing', { cache: c, chunks: f.chunks }),
    },
    {
      name: 'POST /_api/v1/chunks',
      need: on('push'),
      ok: 200,
      request: (c) => ({
        method: 'POST',
        path: `/_api/v1/chunks?cache=${c}`,
        headers: { 'content-type': 'application/x-loft-chunks' },
        body: chunkRecord(),
      }),
    },
    {
      // Commits the present NAR's chunks under a new path; they are visible through the public cache.
      name: 'POST /_api/v1/nar',
      need: on('push'),
      ok: 200,
      request: (c) => json('POST', '/_api/v1/nar', { ...uploadPathMeta(c, randomStorePath('chunked').path, f.nar), chunks: f.chunks }),
    },
    {
      name: 'POST /_api/v1/delete-paths',
      need: on('delete'),
      ok: 200,
      request: (c) => json('POST', '/_api/v1/delete-paths', { cache: c, store_path_hashes: [absentHash] }),
    },
    {
      name: 'PATCH /_api/v1/cache-config/{cache}',
      need: on('configure_cache'),
      ok: 200,
      request: (c) => json('PATCH', `/_api/v1/cache-config/${c}`, { priority: 42 }),
    },
    {
      name: 'PATCH /_api/v1/cache-config/{cache} with retention_period',
      need: on('configure_cache', 'configure_retention'),
      ok: 200,
      request: (c) => json('PATCH', `/_api/v1/cache-config/${c}`, { retention_period: 3600 }),
    },
    {
      name: 'POST /_api/v1/cache-config/{cache}',
      need: { scope: 'name', perms: ['create_cache'] },
      ok: 201,
      target: (v) => (v === 'absent' ? 'fresh' : CACHES[v]),
      request: (c) => json('POST', `/_api/v1/cache-config/${c}`, {}),
      async reset(c, v) {
        if (v === 'absent') await server.fetch(`/_api/v1/cache-config/${c}`, { method: 'DELETE', token: root });
      },
    },
    {
      name: 'DELETE /_api/v1/cache-config/{cache}',
      need: on('destroy_cache'),
      ok: 204,
      target: (v) => DOOMED[v],
      request: (c) => ({ method: 'DELETE', path: `/_api/v1/cache-config/${c}` }),
      async reset(c, v) {
        if (v !== 'absent' && !(await server.services.caches.find(c))) await server.createCache(c, { is_public: v === 'public' });
      },
    },
    { name: 'GET /_api/v1/caches/{cache}/pins', need: on('pull'), ok: 200, request: (c) => ({ method: 'GET', path: `/_api/v1/caches/${c}/pins` }) },
    {
      name: 'PUT /_api/v1/caches/{cache}/pins/{name}',
      need: on('pin'),
      ok: 200,
      request: (c) => json('PUT', `/_api/v1/caches/${c}/pins/access`, { store_path: f.presentPath }),
    },
    {
      name: 'DELETE /_api/v1/caches/{cache}/pins/{name}',
      need: on('pin'),
      ok: 204,
      request: (c) => ({ method: 'DELETE', path: `/_api/v1/caches/${c}/pins/access` }),
      async reset(c, v) {
        if (v === 'absent') return;
        await server.fetch(`/_api/v1/caches/${c}/pins/access`, {
          method: 'PUT',
          token: root,
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ store_path: f.presentPath }),
        });
      },
    },
    // With no retention set, a pass of one cache removes no path; its sweep keeps what is younger than a day.
    { name: 'POST /_api/v1/gc of one cache', need: on('delete'), ok: 200, request: (c) => json('POST', '/_api/v1/gc', { cache: c }) },
    ...(
      [
        ['GET /_api/v1/gc/passes', 200, () => ({ method: 'GET', path: '/_api/v1/gc/passes' })],
        ['POST /_api/v1/tokens', 201, () => json('POST', '/_api/v1/tokens', { sub: 'made', validity: '1h', caches: { priv: ['pull'] } })],
        ['GET /_api/v1/tokens', 200, () => ({ method: 'GET', path: '/_api/v1/tokens' })],
        ['POST /_api/v1/tokens/{jti}/revoke', 204, () => ({ method: 'POST', path: `/_api/v1/tokens/${randomBytes(8).toString('hex')}/revoke` })],
        ['GET /_api/v1/stats', 200, () => ({ method: 'GET', path: '/_api/v1/stats' })],
        ['GET /_api/v1/gc/history', 200, () => ({ method: 'GET', path: '/_api/v1/gc/history' })],
        // Last: a collection pass must not pull fixtures from under the rows above.
        ['POST /_api/v1/gc', 200, () => ({ method: 'POST', path: '/_api/v1/gc' })],
      ] as const
    ).map(([name, ok, request]): RouteCase => ({ name, need: ADMIN, ok, visibilities: ['private'], request })),
  ];
}

for (const db of DB_KINDS) {
  test(`JSON API routes: every caller × public/private/absent cache (${db})`, { timeout: 120_000 }, async (t) => {
    if (db === 'postgres' && !skipUnless(t, await postgresUnavailable())) return;
    const server = await startTestServer({ db });
    t.after(() => server.close());
    const f = await fixtures(server);
    const principals = await Principals.create(server);

    await t.test('GET /_api/v1/caches lists public caches and those the token grants anything on', async () => {
      for (const who of PRINCIPALS) {
        const token = await principals.token(who, 'priv', on('pull'));
        const res = await server.fetch('/_api/v1/caches', { token });
        const body = (await res.json()) as { caches?: Array<{ name: string }>; message?: string };
        if (['wrong-signature', 'expired', 'not-yet-valid', 'revoked'].includes(who)) {
          assert.equal(res.status, 401, `GET /_api/v1/caches × ${who}: ${body.message}`);
          continue;
        }
        assert.equal(res.status, 200, `GET /_api/v1/caches × ${who}`);
        const names = body.caches!.map((c) => c.name).sort();
        const seesPrivate = ['lacking', 'permitted', 'root'].includes(who);
        const expected = seesPrivate && who === 'root' ? ['doomed-priv', 'doomed-pub', 'priv', 'pub'] : seesPrivate ? ['doomed-pub', 'priv', 'pub'] : ['doomed-pub', 'pub'];
        assert.deepEqual(names, expected, `GET /_api/v1/caches × ${who}`);
      }
    });

    await runMatrix(t, server, principals, CACHES, routes(server, f));
  });
}
