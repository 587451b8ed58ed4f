// Hostile and unusual credentials: every bad token is a 401 with a message that says what is
// wrong (never a 500) and changes nothing; tokens also work as the HTTP Basic password.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DB_KINDS } from '../../helpers/databases.ts';
import { postgresUnavailable, skipUnless } from '../../helpers/env.ts';
import { randomStorePath, sampleNar, uploadPathMeta } from '../../helpers/nar.ts';
import { startTestServer, type TestServer } from '../../helpers/server.ts';
import {
  basic,
  claims,
  craftToken,
  issueViaApi,
  revokeViaApi,
  signHs256,
  snapshotState,
  waitForRevocation,
} from '../../helpers/tokens.ts';
import { TokenAuthority } from '../../../src/token/index.ts';

const CACHE = 'priv';

async function setup(server: TestServer): Promise<{ hash: string }> {
  await server.createCache(CACHE, { is_public: false });
  const nar = await sampleNar();
  const sp = randomStorePath();
  const res = await server.fetch('/_api/v1/upload-path', {
    method: 'PUT',
    token: server.adminToken,
    headers: { 'x-loft-nar-info': JSON.stringify(uploadPathMeta(CACHE, sp.path, nar)) },
    body: nar,
  });
  assert.equal(res.status, 200, await res.text());
  return { hash: sp.hash };
}

/** Authorization header → the message the server must give. */
async function badCredentials(server: TestServer): Promise<Array<[string, string, RegExp]>> {
  const secret = server.config.auth.hs256Secret!;
  const sign = (overrides: Record<string, unknown>, loft?: unknown) =>
    signHs256(claims({ [CACHE]: ['pull', 'push'] }, loft === undefined ? overrides : { ...overrides, 'https://loft.dev/v1': loft }), secret);
  const otherKey = await TokenAuthority.create({ algorithm: 'HS256', hs256Secret: Buffer.alloc(32, 9).toString('base64') });
  const good = claims({ [CACHE]: ['pull', 'push'] });
  return [
    ['not a JWT', 'Bearer abc', /^malformed token: expected header\.payload\.signature in base64url$/],
    ['four segments', 'Bearer a.b.c.d', /^malformed token: expected header\.payload\.signature/],
    ['unreadable header', 'Bearer a.b.c', /^malformed token\b/],
    ['root token with a typo', `Bearer ${server.adminToken}x`, /^malformed token: /],
    ['scheme only', 'Bearer', /^malformed Authorization header: /],
    ['unknown scheme', 'Digest abc', /^unsupported Authorization scheme 'Digest'/],
    ['Basic, not base64', 'Basic !!!', /^malformed Basic credentials: not valid base64$/],
    ['Basic, no colon', `Basic ${Buffer.from('justatoken').toString('base64')}`, /^malformed Basic credentials: expected 'user:password'$/],
    ['Basic, empty password', basic(''), /^malformed Basic credentials: the password \(token\) is empty$/],
    ['alg none', `Bearer ${craftToken({ alg: 'none', typ: 'JWT' }, good)}`, /^token algorithm 'none' is not allowed \(this server accepts HS256\)$/],
    ['alg RS256 (key confusion)', `Bearer ${craftToken({ alg: 'RS256' }, good, 'c2ln')}`, /^token algorithm 'RS256' is not allowed/],
    ['signed with another key', `Bearer ${(await otherKey.issue({ sub: 'x', validitySeconds: 60, caches: { [CACHE]: ['pull'] } })).token}`, /^invalid token signature$/],
    ['tampered payload', `Bearer ${tamper(await sign({}))}`, /^invalid token signature$/],
    ['10 KB token', `Bearer ${await sign({ pad: 'x'.repeat(10_000) })}`, /^token is too large \(max 8192 bytes\)$/],
    ['invalid cache pattern in the claim', `Bearer ${await sign({}, { caches: { 'bad name': ['pull'] } })}`, /^invalid cache pattern 'bad name': /],
    ['pattern starting with punctuation', `Bearer ${await sign({}, { caches: { '-x': ['pull'] } })}`, /^invalid cache pattern '-x': /],
    ['unknown permission', `Bearer ${await sign({}, { caches: { [CACHE]: ['pull', 'fly'] } })}`, /^unknown permission 'fly'$/],
    ['admin as a cache permission', `Bearer ${await sign({}, { caches: { [CACHE]: ['admin'] } })}`, /^unknown permission 'admin' \('admin' is the top-level flag/],
    ['unknown field inside the Loft claim', `Bearer ${await sign({}, { caches: {}, readonly: true })}`, /^invalid 'https:\/\/loft\.dev\/v1' claim: unknown field 'readonly'$/],
    ['no Loft claim', `Bearer ${await sign({ 'https://loft.dev/v1': undefined })}`, /^token is missing required claim 'https:\/\/loft\.dev\/v1'$/],
    ['no jti', `Bearer ${await sign({ jti: undefined })}`, /^token is missing required claim 'jti'$/],
    ['non-numeric exp', `Bearer ${await sign({ exp: 'tomorrow' })}`, /^invalid 'exp' claim: must be a number$/],
  ];
}

/** Flips the payload to grant more, keeping the original signature. */
function tamper(token: string): string {
  const [h, p, s] = token.split('.');
  const payload = JSON.parse(Buffer.from(p, 'base64url').toString());
  payload['https://loft.dev/v1'] = { admin: true, caches: { '*': ['pull', 'push', 'destroy_cache'] } };
  return `${h}.${Buffer.from(JSON.stringify(payload)).toString('base64url')}.${s}`;
}

for (const db of DB_KINDS) {
  test(`bad credentials and Basic auth (${db})`, { timeout: 60_000 }, async (t) => {
    if (db === 'postgres' && !skipUnless(t, await postgresUnavailable())) return;
    const server = await startTestServer({ db });
    t.after(() => server.close());
    const { hash } = await setup(server);

    await t.test('every bad token is a 401 naming the problem, on reads and writes, and changes nothing', async () => {
      for (const [what, authorization, message] of await badCredentials(server)) {
        for (const [method, path, body] of [
          ['GET', `/${CACHE}/${hash}.narinfo`, undefined],
          ['PUT', `/${CACHE}/nix-cache-info`, 'StoreDir: /nix/store\n'],
          ['GET', '/_api/v1/tokens', undefined],
        ] as const) {
          const before = await snapshotState(server);
          const res = await server.fetch(path, { method, headers: { authorization }, body });
          const reply = (await res.json()) as { error: string; message: string };
          assert.equal(res.status, 401, `${what} × ${method} ${path}: ${res.status} ${reply.message}`);
          assert.equal(reply.error, 'unauthorized', what);
          assert.match(reply.message, message, `${what} × ${method} ${path}`);
          assert.match(res.headers.get('www-authenticate') ?? '', /^Basic realm="loft"/, what);
          assert.deepEqual(await snapshotState(server), before, `${what}: a refused request changed the database or storage`);
        }
      }
    });

    await t.test('a 20 KB token is refused before it reaches the token code, never with a 500', async () => {
      const huge = await signHs256(claims({ [CACHE]: ['pull'] }, { pad: 'x'.repeat(20_000) }), server.config.auth.hs256Secret!);
      const res = await server.fetch(`/${CACHE}/${hash}.narinfo`, { headers: { authorization: `Bearer ${huge}` } });
      await res.arrayBuffer();
      // Node's HTTP parser caps request headers at 16 KiB: 431, before Loft sees the request.
      assert.ok([401, 431].includes(res.status), `20 KB token: ${res.status}`);
    });

    await t.test('unknown top-level claims are ignored', async () => {
      const token = await signHs256(
        claims({ [CACHE]: ['pull'] }, { scope: 'openid profile', 'https://other.example/v1': { role: 'x' }, foo: [1, 2] }),
        server.config.auth.hs256Secret!,
      );
      const res = await server.fetch(`/${CACHE}/${hash}.narinfo`, { token });
      assert.equal(res.status, 200, await res.text());
    });

    await t.test('a token is accepted as the Basic password, whatever the user', async () => {
      const reader = await issueViaApi(server, { caches: { [CACHE]: ['pull'] } });
      const pusher = await issueViaApi(server, { caches: { [CACHE]: ['pull', 'push'] } });
      const revoked = await issueViaApi(server, { caches: { [CACHE]: ['pull'] } });
      await revokeViaApi(server, revoked.jti);
      await waitForRevocation();
      const cases: Array<[string, string, string, number, RegExp?]> = [
        ['reader (netrc user "loft")', 'GET', basic(reader.token, 'loft'), 200],
        ['reader (empty user)', 'GET', basic(reader.token, ''), 200],
        ['root token', 'GET', basic(server.adminToken), 200],
        ['pusher', 'PUT', basic(pusher.token), 204],
        ['reader pushing', 'PUT', basic(reader.token), 403, /^this token does not grant 'push' on cache 'priv'$/],
        ['revoked', 'GET', basic(revoked.token), 401, /^token has been revoked$/],
      ];
      for (const [who, method, authorization, status, message] of cases) {
        const path = method === 'GET' ? `/${CACHE}/${hash}.narinfo` : `/${CACHE}/nix-cache-info`;
        const res = await server.fetch(path, { method, headers: { authorization }, body: method === 'PUT' ? 'StoreDir: /nix/store\n' : undefined });
        const text = await res.text();
        assert.equal(res.status, status, `Basic × ${who}: ${text}`);
        if (message) assert.match((JSON.parse(text) as { message: string }).message, message, who);
        if (status === 200) assert.match(text, new RegExp(`^StorePath: /nix/store/${hash}-`), who);
      }
    });
  });
}
