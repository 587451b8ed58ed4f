// `loft serve --mode api` as real processes, configured the way a container platform does it: the
// default cache's key in LOFT_SIGNING_KEY (an ECS secret). Replicas starting together create the
// cache once, with that key; a second key in the secret is added by all of them at once; a bad key stops the server with one line that names no secret.
// SQLite + disk and PostgreSQL + S3.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { freshDatabase, type DbKind } from '../../helpers/databases.ts';
import { postgresUnavailable, skipUnless } from '../../helpers/env.ts';
import { loftEnv, runLoft, startLoft } from '../../helpers/processes.ts';
import { sharedS3Storage } from '../../helpers/s3rver.ts';
import { makeTempDir } from '../../helpers/tmp.ts';
import { SigningKey } from '../../../src/nix/signing.ts';
import type { CacheConfig } from '../../../src/api/v1.ts';

for (const db of ['sqlite', 'postgres'] as DbKind[]) {
  test(`LOFT_SIGNING_KEY declares the default cache's key at every replica's start (${db})`, { timeout: 120_000 }, async (t) => {
    if (db === 'postgres' && !skipUnless(t, await postgresUnavailable())) return;
    const tmp = await makeTempDir('loft-declared-');
    const database = await freshDatabase(db, tmp.path);
    t.after(async () => {
      await database.drop();
      await tmp.cleanup();
    });
    const key = SigningKey.generate('cache.example.com-1');
    const env = {
      ...loftEnv({
        databaseUrl: database.url,
        dataDir: path.join(tmp.path, 'data'),
        adminToken: 'root',
        tokenSecret: randomBytes(32).toString('base64'),
        s3: db === 'postgres' ? await sharedS3Storage() : undefined,
      }),
      LOFT_DEFAULT_CACHE: 'main',
      LOFT_SIGNING_KEY: `${key}\n`,
    };
    // SQLite is one process's database; PostgreSQL replicas start side by side.
    const replicas = await Promise.all((db === 'postgres' ? [1, 2] : [1]).map(() => startLoft({ mode: 'api', env })));
    t.after(() => Promise.all(replicas.map((r) => r.kill())));
    for (const r of replicas) {
      const res = await fetch(`${r.url}/_api/v1/cache-config/main`);
      assert.equal(res.status, 200, 'the default cache is public');
      const cfg = (await res.json()) as CacheConfig;
      assert.equal(cfg.public_key, key.publicKey().toString());
      assert.deepEqual(cfg.signing_keys.map((k) => [k.name, k.state]), [['cache.example.com-1', 'active']], 'created once, one key');
    }
    await Promise.all(replicas.map((r) => r.kill()));

    // A rotation: the secret now holds both keys; every replica starts, and both keys sign.
    const next = SigningKey.generate('cache.example.com-2');
    const rotated = await Promise.all(replicas.map(() => startLoft({ mode: 'api', env: { ...env, LOFT_SIGNING_KEY: `${key}\n${next}` } })));
    t.after(() => Promise.all(rotated.map((r) => r.kill())));
    const cfg = (await (await fetch(`${rotated[0]!.url}/_api/v1/cache-config/main`)).json()) as CacheConfig;
    assert.deepEqual(cfg.signing_keys.map((k) => [k.name, k.state]), [['cache.example.com-1', 'active'], ['cache.example.com-2', 'active']]);
    await Promise.all(rotated.map((r) => r.kill()));

    const secretHalf = Buffer.alloc(64, 9).toString('base64');
    const bad = await runLoft({ mode: 'api', env: { ...env, LOFT_SIGNING_KEY: `cache.example.com-2:${secretHalf}` } });
    assert.equal(bad.code, 1);
    assert.equal(bad.output.trim().split('\n').length, 1, `one line: ${bad.output}`);
    assert.match(bad.output, /error: config: cache 'main': LOFT_SIGNING_KEY \(signing key of cache 'main'\): invalid secret key 'cache.example.com-2': public half does not match the seed/);
    assert.ok(!bad.output.includes(secretHalf), 'the secret is not printed');
  });
}
