// Issue 11: the `upstreams` setting of the cache-config API and of `loft cache configure|info`:
// what is accepted, what is refused with a clear 400, and credentials that never come back.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { DB_KINDS } from '../../helpers/databases.ts';
import { postgresUnavailable, skipUnless } from '../../helpers/env.ts';
import { runCli } from '../../helpers/cli.ts';
import { startTestServer } from '../../helpers/server.ts';
import { makeTempDir } from '../../helpers/tmp.ts';

const NIXOS_KEY = 'cache.nixos.org-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY=';

for (const db of DB_KINDS) {
  test(`upstreams in the cache config API and the CLI (${db})`, { timeout: 120_000 }, async (t) => {
    if (db === 'postgres' && !skipUnless(t, await postgresUnavailable())) return;
    const server = await startTestServer({ db });
    const tmp = await makeTempDir('loft-upstream-config-');
    t.after(async () => {
      await server.close();
      await tmp.cleanup();
    });
    const api = async (method: string, cache: string, body?: unknown) => {
      const res = await server.fetch(`/_api/v1/cache-config/${cache}`, {
        method,
        token: server.adminToken,
        headers: body === undefined ? {} : { 'content-type': 'application/json' },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      return { status: res.status, text: await res.text() };
    };

    await t.test('a new cache has no upstreams; both kinds can be set, in order, with credentials kept server-side', async () => {
      await server.createCache('base');
      const created = await api('POST', 'proxy', {});
      assert.equal(created.status, 201);
      assert.deepEqual(JSON.parse(created.text).upstreams, []);
      const set = await api('PATCH', 'proxy', {
        upstreams: [
          { url: 'https://cache.nixos.org/', public_keys: [NIXOS_KEY], priority: 40, bearer_token: 'top-secret-token' },
          { cache: 'base' },
        ],
        upstream_retention_period: 86400,
      });
      assert.equal(set.status, 200, set.text);
      assert.doesNotMatch(set.text, /top-secret/);
      const config = JSON.parse((await api('GET', 'proxy')).text);
      assert.deepEqual(config.upstreams, [
        { url: 'https://cache.nixos.org', public_keys: [NIXOS_KEY], priority: 40, has_credentials: true },
        { cache: 'base' },
      ]);
      assert.equal(config.upstream_retention_period, 86400);
      const stored = await server.services.kysely.selectFrom('caches').select('upstreams').where('name', '=', 'proxy').executeTakeFirstOrThrow();
      assert.match(stored.upstreams, /Bearer top-secret-token/);
      // The same URL again without credentials keeps them; null clears them.
      await api('PATCH', 'proxy', { upstreams: [{ url: 'https://cache.nixos.org', public_keys: [NIXOS_KEY] }] });
      assert.equal(JSON.parse((await api('GET', 'proxy')).text).upstreams[0].has_credentials, true);
      await api('PATCH', 'proxy', { upstreams: [{ url: 'https://cache.nixos.org', public_keys: [NIXOS_KEY], bearer_token: null }] });
      assert.equal(JSON.parse((await api('GET', 'proxy')).text).upstreams[0].has_credentials, false);
      assert.deepEqual(JSON.parse((await api('PATCH', 'proxy', { upstreams: [] })).text).upstreams, []);
    });

    await t.test('bad upstreams are refused with a message that says what is wrong', async () => {
      for (const [upstreams, message] of [
        [[{ url: 'ftp://example.org', public_keys: [NIXOS_KEY] }], /must be http:\/\/ or https:\/\//],
        [[{ url: 'not a url', public_keys: [NIXOS_KEY] }], /is not a URL/],
        [[{ url: 'https://u:p@example.org', public_keys: [NIXOS_KEY] }], /must not contain credentials/],
        [[{ url: 'https://example.org', public_keys: [] }], /public_keys must list at least one key/],
        [[{ url: 'https://example.org', public_keys: ['nokey'] }], /public_keys: invalid public key/],
        [[{ url: 'https://example.org', public_keys: [NIXOS_KEY], priority: -1 }], /priority must be an integer/],
        [[{ url: 'https://example.org', public_keys: [NIXOS_KEY], bearer_token: 'a', basic_auth: 'u:p' }], /either bearer_token or basic_auth/],
        [[{ url: 'https://example.org', public_keys: [NIXOS_KEY], basic_auth: 'nocolon' }], /basic_auth must be 'user:password'/],
        [[{ url: 'https://example.org', public_keys: [NIXOS_KEY] }, { url: 'https://example.org/', public_keys: [NIXOS_KEY] }], /listed twice/],
        [[{ cache: 'proxy' }], /cannot be its own upstream/],
        [[{ cache: 'nonexistent' }], /upstream cache 'nonexistent' does not exist/],
        [[{ public_keys: [NIXOS_KEY] }], /give either "url"/],
      ] as const) {
        const r = await api('PATCH', 'proxy', { upstreams });
        assert.equal(r.status, 400, `${JSON.stringify(upstreams)}: ${r.text}`);
        assert.match(JSON.parse(r.text).message, message);
      }
      assert.deepEqual(JSON.parse((await api('GET', 'proxy')).text).upstreams, [], 'nothing was changed');
    });

    await t.test('loft cache configure --upstream and loft cache info', async () => {
      const env = { LOFT_SERVER: server.url, LOFT_TOKEN: server.adminToken, HOME: path.join(tmp.path, 'home'), XDG_CONFIG_HOME: path.join(tmp.path, 'xdg') };
      const r = await runCli(['cache', 'configure', 'proxy', '--upstream', `https://cache.nixos.org ${NIXOS_KEY}`, '--upstream', 'cache:base', '--upstream-retention', '2w'], env);
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(JSON.parse((await api('GET', 'proxy')).text).upstreams, [
        { url: 'https://cache.nixos.org', public_keys: [NIXOS_KEY], has_credentials: false },
        { cache: 'base' },
      ]);
      const info = await runCli(['cache', 'info', 'proxy'], env);
      assert.equal(info.code, 0, info.stderr);
      assert.match(info.stdout, /Upstreams:\s+\n\s+1\. https:\/\/cache\.nixos\.org \(cache\.nixos\.org-1\)\n\s+2\. cache:base \(cache 'base' on this server\)/);
      assert.match(info.stdout, /Upstream retention:\s+2w\n/);
      const bad = await runCli(['cache', 'configure', 'proxy', '--upstream', 'https://cache.nixos.org'], env);
      assert.equal(bad.code, 1);
      assert.match(bad.stderr, /^error: invalid upstream 'https:\/\/cache.nixos.org': use 'URL KEY \[KEY…\]'/);
      const off = await runCli(['cache', 'configure', 'proxy', '--no-upstreams'], env);
      assert.equal(off.code, 0, off.stderr);
      assert.match((await runCli(['cache', 'info', 'proxy'], env)).stdout, /Upstreams:\s+\(none: pull-through is off\)/);
    });
  });
}
