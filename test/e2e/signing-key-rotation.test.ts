// Key rotation with the real `nix` and the `loft` CLI: keys made by `nix key generate-secret` are
// imported from files; during the overlap a client trusting only the old key and one trusting only
// the new key both pull; after the old key is retired only the new one works. Embedded mode
// (SQLite + disk) and production mode (PostgreSQL + S3).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { nixUnavailable, postgresUnavailable, skipUnless } from '../helpers/env.ts';
import { buildCorpus, closureOf, nix, nixEnv, writeNetrc } from '../helpers/nix.ts';
import { startTestServer } from '../helpers/server.ts';
import { makeTempDir } from '../helpers/tmp.ts';
import { runCli, type CliRun } from '../helpers/cli.ts';
import type { CacheConfig } from '../../src/api/v1.ts';

const SETUPS = [
  { db: 'sqlite', storage: 'local' },
  { db: 'postgres', storage: 's3' },
] as const;

const ok = (r: CliRun) => {
  assert.equal(r.code, 0, `exit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  return r.stdout;
};

for (const { db, storage } of SETUPS) {
  test(`signing keys from nix key generate-secret rotate without breaking any client (${db} + ${storage})`, { timeout: 600_000 }, async (t) => {
    if (!skipUnless(t, nixUnavailable())) return;
    if (db === 'postgres' && !skipUnless(t, await postgresUnavailable())) return;
    const corpus = await buildCorpus(['all']);
    const server = await startTestServer({ db, storage });
    const tmp = await makeTempDir('loft-rotate-');
    t.after(async () => {
      await server.close();
      await tmp.cleanup();
    });
    const env = nixEnv(tmp.path);
    const secretKey = async (name: string) => {
      const file = path.join(tmp.path, `${name}.sec`);
      const secret = await nix(['key', 'generate-secret', '--key-name', name], env);
      await writeFile(file, secret, { mode: 0o600 });
      const pub = execFileSync('nix', ['key', 'convert-secret-to-public'], { env, input: secret }).toString().trim();
      return { file, pub, secretHalf: secret.slice(secret.indexOf(':') + 1) };
    };
    const oldKey = await secretKey('rotate.example.com-1');
    const newKey = await secretKey('rotate.example.com-2');
    const cliEnv = { LOFT_SERVER: server.url, LOFT_TOKEN: server.adminToken, HOME: tmp.path, XDG_CONFIG_HOME: path.join(tmp.path, 'xdg') };
    const loft = (...args: string[]) => runCli(args, cliEnv);

    // The imported key is the cache's key: its public half is what `nix key convert-secret-to-public` says.
    const created = JSON.parse(ok(await loft('cache', 'create', 'rot', '--public', '--signing-key-file', oldKey.file, '--json'))) as CacheConfig;
    assert.equal(created.public_key, oldKey.pub);
    assert.ok(!JSON.stringify(created).includes(oldKey.secretHalf), 'the secret key is never sent back');

    const netrc = await writeNetrc(tmp.path, server.url, server.adminToken);
    await nix(['copy', '--to', `${server.url}/rot`, '--option', 'netrc-file', netrc, corpus.all], nixEnv(path.join(tmp.path, 'push')));
    const closure = await closureOf([corpus.all]);

    let pulls = 0;
    /** `nix copy --from` into a fresh store (and a fresh client narinfo cache), trusting only `key`. */
    const pull = async (key: string) => {
      const dir = path.join(tmp.path, `pull-${++pulls}`);
      const store = path.join(dir, 'store');
      const e = nixEnv(dir);
      await nix(['copy', '--from', `${server.url}/rot`, '--to', store, corpus.all, '--option', 'trusted-public-keys', key], e);
      await nix(['store', 'verify', '--store', store, '--trusted-public-keys', key, '-r', corpus.all], e);
      assert.deepEqual((await nix(['--store', store, '-qR', corpus.all], e, 'nix-store')).split('\n').sort(), [...closure].sort());
    };
    await pull(oldKey.pub);

    // Overlap: both keys sign every narinfo.
    const added = ok(await loft('cache', 'configure', 'rot', '--add-signing-key-file', newKey.file));
    assert.match(added, /active\s+rotate\.example\.com-1:/);
    assert.match(added, /active\s+rotate\.example\.com-2:/);
    await pull(oldKey.pub);
    await pull(newKey.pub);
    const overlap = ok(await loft('cache', 'info', 'rot'));
    assert.match(overlap, new RegExp(`Signing key: +${escape(oldKey.pub)} \\(active since `));
    assert.match(overlap, new RegExp(`Signing key: +${escape(newKey.pub)} \\(active since `));

    // Retired: the old key signs nothing any more.
    ok(await loft('cache', 'configure', 'rot', '--retire-signing-key', 'rotate.example.com-1'));
    assert.match(ok(await loft('cache', 'info', 'rot')), new RegExp(`Signing key: +${escape(oldKey.pub)} \\(retired `));
    await pull(newKey.pub);
    await assert.rejects(pull(oldKey.pub), /lacks a valid signature/);
  });
}

function escape(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
}
