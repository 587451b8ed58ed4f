// Issue 13, item 9: how long a token may live, and what the admin flag alone allows.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DB_KINDS } from '../../helpers/databases.ts';
import { postgresUnavailable, skipUnless } from '../../helpers/env.ts';
import { startTestServer, type TestServer } from '../../helpers/server.ts';
import { issueViaApi } from '../../helpers/tokens.ts';
import { resolveConfig } from '../../../src/server/config.ts';

const statusOf = async (res: Promise<Response>) => {
  const r = await res;
  await r.arrayBuffer();
  return r.status;
};

const issue = (server: TestServer, token: string, body: Record<string, unknown>) =>
  server.fetch('/_api/v1/tokens', {
    method: 'POST',
    token,
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ sub: 'test', caches: { main: ['pull'] }, ...body }),
  });

test('auth.max_token_validity is a duration (default 1y); a malformed one is a config error', () => {
  assert.equal(resolveConfig({}, {}).auth.maxTokenValiditySeconds, 365 * 86400);
  assert.equal(resolveConfig({ auth: { max_token_validity: '30d' } }, {}).auth.maxTokenValiditySeconds, 30 * 86400);
  assert.equal(resolveConfig({}, { LOFT_MAX_TOKEN_VALIDITY: '2h' }).auth.maxTokenValiditySeconds, 7200);
  assert.throws(() => resolveConfig({ auth: { max_token_validity: 'forever' } }, {}), /^Error: config: auth.max_token_validity: invalid duration 'forever'/);
});

for (const db of DB_KINDS) {
  test(`token validity is capped and the admin flag is token management (${db})`, { timeout: 120_000 }, async (t) => {
    if (db === 'postgres' && !skipUnless(t, await postgresUnavailable())) return;
    const server = await startTestServer({ db });
    t.after(() => server.close());
    await server.createCache('main', { is_public: false });

    await t.test('a validity beyond auth.max_token_validity is refused saying the limit', async () => {
      for (const validity of ['1y1d', '99999y']) {
        const res = await issue(server, server.adminToken, { validity });
        const body = (await res.json()) as { message: string };
        assert.equal(res.status, 400, body.message);
        assert.match(body.message, new RegExp(`^token validity ${validity} exceeds this server's maximum of 1y \\(auth.max_token_validity\\)`));
      }
      const ok = await issue(server, server.adminToken, { validity: '1y' });
      assert.equal(ok.status, 201, await ok.text());
    });

    await t.test('an admin-only token can issue any token, a `*` one included (documented: admin is root-equivalent)', async () => {
      const adminOnly = await issueViaApi(server, { caches: {}, admin: true });
      assert.equal(await statusOf(server.fetch('/main/nix-cache-info', { token: adminOnly.token })), 403, 'admin grants nothing on caches');
      const res = await issue(server, adminOnly.token, { validity: '1h', caches: { '*': ['pull', 'push'] } });
      const text = await res.text();
      assert.equal(res.status, 201, text);
      const minted = JSON.parse(text) as { token: string };
      assert.equal(await statusOf(server.fetch('/main/nix-cache-info', { token: minted.token })), 200);
    });
  });
}
