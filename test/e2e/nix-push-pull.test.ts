// The real `nix` (Debian's 2.8) pushing with `nix copy --to http://…` and
// pulling into fresh stores with signatures required, on SQLite and PostgreSQL.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { nixUnavailable, postgresUnavailable, skipUnless } from '../helpers/env.ts';
import { buildCorpus, closureOf, nix, nixEnv, writeNetrc } from '../helpers/nix.ts';
import { startTestServer } from '../helpers/server.ts';
import { listStorageObjects } from '../helpers/storage-objects.ts';
import { makeTempDir } from '../helpers/tmp.ts';

// Embedded defaults, PostgreSQL alone, and production mode (PostgreSQL + S3).
const SETUPS = [
  { db: 'sqlite', storage: 'local' },
  { db: 'postgres', storage: 'local' },
  { db: 'postgres', storage: 's3' },
] as const;

for (const { db, storage } of SETUPS) {
  test(`nix copy --to and substitution round-trip the whole corpus (${db} + ${storage})`, { timeout: 600_000 }, async (t) => {
    if (!skipUnless(t, nixUnavailable())) return;
    if (db === 'postgres' && !skipUnless(t, await postgresUnavailable())) return;
    const corpus = await buildCorpus(['all', 'big', 'leaf']);
    const server = await startTestServer({ db, storage });
    const tmp = await makeTempDir('loft-e2e-');
    t.after(async () => {
      await server.close();
      await tmp.cleanup();
    });
    const netrc = await writeNetrc(tmp.path, server.url, server.adminToken);
    const small = await closureOf([corpus.all]);
    const everything = await closureOf([corpus.all, corpus.big]);
    assert.ok(small.length >= 10, `corpus closure has ${small.length} paths`);

    const keys: Record<string, string> = {};
    for (const c of ['zstd', 'xz', 'none']) keys[c] = await server.createCache(`e2e-${c}`, { is_public: true });

    const push = async (cache: string, compression: string, paths: string[]) => {
      const env = nixEnv(path.join(tmp.path, `push-${cache}`));
      const started = Date.now();
      await nix(
        ['copy', '--to', `${server.url}/${cache}?compression=${compression}`, '--option', 'netrc-file', netrc, ...paths],
        env,
      );
      return Date.now() - started;
    };
    const pushMs = await push('e2e-zstd', 'zstd', [corpus.all, corpus.big]);
    await push('e2e-xz', 'xz', [corpus.all]);
    await push('e2e-none', 'none', [corpus.all]);
    t.diagnostic(`push of ${everything.length} paths incl. a 100 MiB path (zstd): ${pushMs} ms`);

    // The same NAR pushed to three caches (or by two paths) is stored once.
    const k = server.services.kysely;
    const narHashes = new Set((await nix(['-q', '--hash', ...everything], nixEnv(tmp.path), 'nix-store')).split('\n'));
    const nars = await k.selectFrom('nars').select(({ fn }) => fn.countAll<number>().as('n')).executeTakeFirstOrThrow();
    assert.equal(Number(nars.n), narHashes.size);
    const objects = await k.selectFrom('objects').select(({ fn }) => fn.countAll<number>().as('n')).executeTakeFirstOrThrow();
    assert.equal(Number(objects.n), everything.length + 2 * small.length);

    // A second identical push sends nothing new: Nix finds every narinfo and uploads nothing, and
    // neither the database nor storage gains anything.
    const puts = async () => {
      const text = await (await server.fetch('/metrics')).text();
      return text
        .split('\n')
        .filter((l) => l.startsWith('loft_http_requests_total{') && l.includes('method="PUT"'))
        .reduce((sum, l) => sum + Number(l.split(' ').pop()), 0);
    };
    const stored = async () => ({
      nars: Number((await k.selectFrom('nars').select(({ fn }) => fn.countAll<number>().as('n')).executeTakeFirstOrThrow()).n),
      chunks: Number((await k.selectFrom('chunks').select(({ fn }) => fn.countAll<number>().as('n')).executeTakeFirstOrThrow()).n),
      objects: Number((await k.selectFrom('objects').select(({ fn }) => fn.countAll<number>().as('n')).executeTakeFirstOrThrow()).n),
      storage: await listStorageObjects(server.config.storage),
    });
    const [putsBefore, storedBefore] = [await puts(), await stored()];
    assert.ok(putsBefore > 0, 'the first pushes were counted');
    await push('e2e-zstd', 'zstd', [corpus.all]);
    assert.equal(await puts(), putsBefore, 'the second identical push made no PUT request');
    assert.deepEqual(await stored(), storedBefore, 'the second identical push stored nothing');

    for (const [cache, roots, closure] of [
      ['e2e-zstd', [corpus.all, corpus.big], everything],
      ['e2e-xz', [corpus.all], small],
      ['e2e-none', [corpus.all], small],
    ] as const) {
      const key = keys[cache.slice(4)];
      const storeDir = path.join(tmp.path, `store-${cache}`);
      const env = nixEnv(path.join(tmp.path, `pull-${cache}`));
      const started = Date.now();
      await nix(
        ['--store', storeDir, '-r', ...roots, '--option', 'substituters', `${server.url}/${cache}`,
          '--option', 'trusted-public-keys', key, '--option', 'require-sigs', 'true'],
        env,
        'nix-store',
      );
      if (cache === 'e2e-zstd') t.diagnostic(`substitution of the same closure: ${Date.now() - started} ms`);
      await nix(['store', 'verify', '--store', storeDir, '--trusted-public-keys', key, '-r', ...roots], env);
      const pulled = (await nix(['--store', storeDir, '-qR', ...roots], env, 'nix-store')).split('\n');
      assert.deepEqual(pulled.sort(), [...closure].sort());
    }

    // An untrusted key is refused by Nix: the narinfos are really signed by the cache key.
    const env = nixEnv(path.join(tmp.path, 'pull-untrusted'));
    await assert.rejects(
      nix(
        ['copy', '--from', `${server.url}/e2e-zstd`, '--to', path.join(tmp.path, 'store-untrusted'), corpus.leaf,
          '--option', 'trusted-public-keys', 'other-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY='],
        env,
      ),
      /lacks a valid signature/,
    );
  });
}
