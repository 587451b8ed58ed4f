// The real `nix` against a PRIVATE cache: push with a token from a netrc file, anonymous
// pulls refused, signed pulls with a read-only token, and pushes with it refused.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { DB_KINDS } from '../helpers/databases.ts';
import { nixUnavailable, postgresUnavailable, skipUnless } from '../helpers/env.ts';
import { buildCorpus, closureOf, nix, nixEnv, writeNetrc } from '../helpers/nix.ts';
import { startTestServer } from '../helpers/server.ts';
import { issueViaApi } from '../helpers/tokens.ts';
import { makeTempDir } from '../helpers/tmp.ts';

const CACHE = 'secret';

for (const db of DB_KINDS) {
  test(`private cache with the real nix: tokens in netrc (${db})`, { timeout: 300_000 }, async (t) => {
    if (!skipUnless(t, nixUnavailable())) return;
    if (db === 'postgres' && !skipUnless(t, await postgresUnavailable())) return;
    const corpus = await buildCorpus(['chain3']);
    // Fresh paths for the refused push: paths already in the cache would make `nix copy` a no-op.
    const unpushed = await buildCorpus(['leaf'], { salt: randomBytes(6).toString('hex') });
    const server = await startTestServer({ db });
    const tmp = await makeTempDir('loft-e2e-private-');
    t.after(async () => {
      await server.close();
      await tmp.cleanup();
    });
    const key = await server.createCache(CACHE, { is_public: false });
    const url = `${server.url}/${CACHE}`;
    // `nix copy --to` reads narinfos and nix-cache-info before uploading, so a pusher needs pull too.
    const pusher = await issueViaApi(server, { sub: 'ci', caches: { [CACHE]: ['pull', 'push'] } });
    const reader = await issueViaApi(server, { sub: 'dev', caches: { [CACHE]: ['pull'] } });
    const pushNetrc = await writeNetrc(path.join(tmp.path, 'pusher'), server.url, pusher.token);
    const readNetrc = await writeNetrc(path.join(tmp.path, 'reader'), server.url, reader.token);
    const closure = await closureOf([corpus.chain3]);

    await nix(['copy', '--to', `${url}?compression=zstd`, '--option', 'netrc-file', pushNetrc, corpus.chain3], nixEnv(path.join(tmp.path, 'push')));
    const objects = await server.services.kysely.selectFrom('objects').select('store_path').execute();
    assert.deepEqual(objects.map((o) => o.store_path).sort(), [...closure].sort());

    const pull = (name: string, extra: string[]) =>
      nix(
        ['--store', path.join(tmp.path, `store-${name}`), '-r', corpus.chain3, '--option', 'substituters', url,
          '--option', 'trusted-public-keys', key, '--option', 'require-sigs', 'true', ...extra],
        nixEnv(path.join(tmp.path, `pull-${name}`)),
        'nix-store',
      );

    // Anonymous: the cache answers 401 to everything, so nothing can be substituted.
    await assert.rejects(pull('anonymous', []), /does not appear to be a binary cache[\s\S]*don't know how to build/);

    await pull('reader', ['--option', 'netrc-file', readNetrc]);
    const env = nixEnv(path.join(tmp.path, 'verify'));
    const storeDir = path.join(tmp.path, 'store-reader');
    await nix(['store', 'verify', '--store', storeDir, '--trusted-public-keys', key, '-r', corpus.chain3], env);
    const pulled = (await nix(['--store', storeDir, '-qR', corpus.chain3], env, 'nix-store')).split('\n');
    assert.deepEqual(pulled.sort(), [...closure].sort());

    // The read-only token cannot push, and nothing of the attempt is stored.
    await assert.rejects(
      nix(['copy', '--to', `${url}?compression=zstd`, '--option', 'netrc-file', readNetrc, unpushed.leaf], nixEnv(path.join(tmp.path, 'push-ro'))),
      /403/,
    );
    const after = await server.services.kysely.selectFrom('objects').select('store_path').execute();
    assert.equal(after.length, closure.length);
  });
}
