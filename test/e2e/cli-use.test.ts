// `loft login` + `loft use` with the real nix: a PRIVATE cache filled by `nix copy --to`, then a
// pull into a fresh store that relies only on what `loft use` wrote — the substituter and key in
// $XDG_CONFIG_HOME/nix/nix.conf, the token in the netrc it names — with signatures required.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { nixUnavailable, skipUnless } from '../helpers/env.ts';
import { buildCorpus, closureOf, nix, nixEnv, writeNetrc } from '../helpers/nix.ts';
import { startTestServer } from '../helpers/server.ts';
import { issueViaApi } from '../helpers/tokens.ts';
import { makeTempDir } from '../helpers/tmp.ts';
import { runCli as loft } from '../helpers/cli.ts';

const CACHE = 'team';


test('loft use configures the real nix for a private cache', { timeout: 300_000 }, async (t) => {
  if (!skipUnless(t, nixUnavailable())) return;
  const corpus = await buildCorpus(['chain3']);
  const server = await startTestServer({ db: 'sqlite' });
  const tmp = await makeTempDir('loft-e2e-cli-use-');
  t.after(async () => {
    await server.close();
    await tmp.cleanup();
  });
  const key = await server.createCache(CACHE, { is_public: false });
  const url = `${server.url}/${CACHE}`;
  const closure = await closureOf([corpus.chain3]);

  // Fill the cache as CI would: `nix copy` with the admin token in a netrc.
  const pushNetrc = await writeNetrc(path.join(tmp.path, 'push'), server.url, server.adminToken);
  await nix(['copy', '--to', `${url}?compression=zstd`, '--option', 'netrc-file', pushNetrc, corpus.chain3], nixEnv(path.join(tmp.path, 'push')));

  // A developer with a pull-only token logs in and runs `loft use` on a fresh home.
  const reader = await issueViaApi(server, { sub: 'dev', caches: { [CACHE]: ['pull'] } });
  const xdg = path.join(tmp.path, 'xdg');
  const env = { HOME: path.join(tmp.path, 'home'), XDG_CONFIG_HOME: xdg };
  const login = await loft(['login', 'work', server.url, reader.token], env);
  assert.equal(login.code, 0, login.stderr);
  const use = await loft(['use', `work:${CACHE}`], env);
  assert.equal(use.code, 0, use.stderr);
  const conf = await readFile(path.join(xdg, 'nix', 'nix.conf'), 'utf8');
  assert.match(conf, new RegExp(`^extra-substituters = ${url}$`, 'm'));
  assert.match(conf, /^netrc-file = /m);

  // Nix reads $NIX_CONF_DIR/nix.conf first, then $XDG_CONFIG_HOME/nix/nix.conf, then NIX_CONFIG.
  // A system config without substituters stands in for /etc/nix (no cache.nixos.org offline);
  // NIX_CONFIG must not set `substituters =`, which would replace what the user file added.
  const etc = path.join(tmp.path, 'etc-nix');
  await mkdir(etc, { recursive: true });
  await writeFile(path.join(etc, 'nix.conf'), 'substituters =\nsandbox = false\n');
  const pullEnv: NodeJS.ProcessEnv = {
    ...process.env,
    NIX_CONF_DIR: etc,
    XDG_CONFIG_HOME: xdg,
    XDG_CACHE_HOME: path.join(tmp.path, 'pull-cache'),
    NIX_CONFIG: 'experimental-features = nix-command\nrequire-sigs = true',
  };
  const store = path.join(tmp.path, 'store');
  const shown = await nix(['show-config'], pullEnv);
  assert.match(shown, new RegExp(`^substituters = ${url}$`, 'm'));
  assert.match(shown, new RegExp(`^trusted-public-keys = .*${key.replace(/[+/=]/g, '\\$&')}`, 'm'));

  await nix(['--store', store, '-r', corpus.chain3], pullEnv, 'nix-store');
  await nix(['store', 'verify', '--store', store, '--trusted-public-keys', key, '-r', corpus.chain3], pullEnv);
  const pulled = (await nix(['--store', store, '-qR', corpus.chain3], pullEnv, 'nix-store')).split('\n');
  assert.deepEqual(pulled.sort(), [...closure].sort());

  // Without the netrc that `loft use` wrote, the same pull is refused (the cache is private).
  const noNetrc = { ...pullEnv, NIX_CONFIG: `${pullEnv.NIX_CONFIG}\nnetrc-file = ${path.join(tmp.path, 'none')}`, XDG_CACHE_HOME: path.join(tmp.path, 'anon-cache') };
  await assert.rejects(nix(['--store', path.join(tmp.path, 'store-anon'), '-r', corpus.chain3], noNetrc, 'nix-store'), /don't know how to build|does not appear to be a binary cache/);
});
