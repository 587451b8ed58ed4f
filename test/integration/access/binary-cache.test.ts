// Access matrix for the Nix binary-cache protocol: reads (what substitution sends) and the
// writes of `nix copy --to`, for every kind of caller on public, private and absent caches.
import { test } from 'node:test';
import { randomBytes } from 'node:crypto';
import { DB_KINDS } from '../../helpers/databases.ts';
import { postgresUnavailable, skipUnless } from '../../helpers/env.ts';
import { narInfoText, nixUpload, randomStorePath, sampleNar, type Bytes, type NixUpload } from '../../helpers/nar.ts';
import { startTestServer, type TestServer } from '../../helpers/server.ts';
import { Principals, runMatrix, type Need, type RouteCase, type Visibility } from '../../helpers/tokens.ts';
import { encodeNixBase32 } from '../../../src/nix/base32.ts';

const CACHES: Record<Visibility, string> = { public: 'pub', private: 'priv', absent: 'nowhere' };
const PULL: Need = { scope: 'cache', perms: ['pull'] };
const PUSH: Need = { scope: 'cache', perms: ['push'] };

async function rootPut(server: TestServer, path: string, body: Bytes | string): Promise<void> {
  const res = await server.fetch(path, { method: 'PUT', token: server.adminToken, body });
  if (!res.ok) throw new Error(`PUT ${path}: ${res.status} ${await res.text()}`);
}

interface Fixtures {
  /** A path present in pub and priv, pushed as `nix copy` would. */
  present: NixUpload;
  /** The file its narinfo names (Loft serves its own zstd file, not the uploaded one). */
  servedNar: string;
  /** A NAR uploaded to pub and priv whose narinfo has not arrived: what PUT narinfo completes. */
  pending: NixUpload;
  /** A NAR file for PUT nar. */
  upload: NixUpload;
}

async function fixtures(server: TestServer): Promise<Fixtures> {
  const [present, pending, upload] = await Promise.all([1, 2, 3].map(async () => nixUpload(await sampleNar())));
  let servedNar = '';
  for (const cache of [CACHES.public, CACHES.private]) {
    await server.createCache(cache, { is_public: cache === CACHES.public });
    await rootPut(server, `/${cache}/nar/${present.fileName}`, present.file);
    await rootPut(server, `/${cache}/${present.storePath.hash}.narinfo`, narInfoText(present.narInfo));
    await rootPut(server, `/${cache}/nar/${pending.fileName}`, pending.file);
    const res = await server.fetch(`/${cache}/${present.storePath.hash}.narinfo`, { token: server.adminToken });
    servedNar = /^URL: (.*)$/m.exec(await res.text())![1];
  }
  return { present, servedNar, pending, upload };
}

function routes(f: Fixtures): RouteCase[] {
  const absentHash = randomStorePath().hash;
  const absentNar = `nar/${encodeNixBase32(randomBytes(32))}.nar.zst`;
  const reads: RouteCase[] = [];
  for (const method of ['GET', 'HEAD']) {
    const read = (name: string, file: string, exists: boolean, leakGroup?: string): RouteCase => ({
      name: `${method} ${name}`,
      need: PULL,
      ok: 200,
      exists,
      leakGroup: leakGroup && `${method} ${leakGroup}`,
      request: (c) => ({ method, path: `/${c}/${file}` }),
    });
    reads.push(
      read('nix-cache-info', 'nix-cache-info', true),
      read('<hash>.narinfo (present)', `${f.present.storePath.hash}.narinfo`, true, 'narinfo'),
      read('<hash>.narinfo (absent)', `${absentHash}.narinfo`, false, 'narinfo'),
      read('nar/<file> (present)', f.servedNar, true, 'nar'),
      read('nar/<file> (absent)', absentNar, false, 'nar'),
    );
    if (method === 'GET') {
      reads.push(
        read('<hash>.ls (present)', `${f.present.storePath.hash}.ls`, true, 'ls'),
        read('<hash>.ls (absent)', `${absentHash}.ls`, false, 'ls'),
      );
    }
  }
  const writes: RouteCase[] = [
    {
      name: 'PUT nix-cache-info',
      need: PUSH,
      ok: 204,
      request: (c) => ({ method: 'PUT', path: `/${c}/nix-cache-info`, body: 'StoreDir: /nix/store\n' }),
    },
    {
      name: 'PUT nar/<filehash>.nar.zst',
      need: PUSH,
      ok: 201,
      request: (c) => ({ method: 'PUT', path: `/${c}/nar/${f.upload.fileName}`, body: f.upload.file }),
    },
    {
      name: 'PUT <hash>.narinfo',
      need: PUSH,
      ok: 204,
      request: (c) => ({ method: 'PUT', path: `/${c}/${f.pending.storePath.hash}.narinfo`, body: narInfoText(f.pending.narInfo) }),
    },
  ];
  return [...reads, ...writes];
}

for (const db of DB_KINDS) {
  test(`binary-cache routes: every caller × public/private/absent cache (${db})`, { timeout: 120_000 }, async (t) => {
    if (db === 'postgres' && !skipUnless(t, await postgresUnavailable())) return;
    const server = await startTestServer({ db });
    t.after(() => server.close());
    const f = await fixtures(server);
    const principals = await Principals.create(server);
    await runMatrix(t, server, principals, CACHES, routes(f));
  });
}
