import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { before, describe, it } from 'node:test';
import { CompactSign, SignJWT } from 'jose';
import { TokenAuthority } from '../../../src/token/authority.ts';
import { assertRejects, craft, LOFT, nowSeconds, OTHER_SECRET, payload, rsaPems, SECRET, signHs256 } from './helpers.ts';

describe('verify() rejections', () => {
  let hs: TokenAuthority;
  before(async () => {
    hs = await TokenAuthority.create({ algorithm: 'HS256', hs256Secret: SECRET });
  });

  it('accepts a well-formed token with unknown extra claims', async () => {
    const token = await signHs256(payload({ foo: 1, 'https://other.example/claims': { role: 'x' }, scope: 'a b' }));
    const p = await hs.verify(token);
    assert.equal(p.sub, 'alice');
    assert.ok(p.can('main', 'pull'));
  });

  it('rejects expired tokens, allowing the clock tolerance', async () => {
    await assertRejects(hs, await signHs256(payload({ exp: nowSeconds() - 3600 })), /^token expired at \d{4}-\d\d-\d\dT/);
    assert.equal((await hs.verify(await signHs256(payload({ exp: nowSeconds() - 10 })))).sub, 'alice');
  });

  it('rejects tokens that are not valid yet', async () => {
    await assertRejects(hs, await signHs256(payload({ nbf: nowSeconds() + 3600 })), /^token is not valid before \d{4}-/);
  });

  it('rejects a signature made with another secret, and a tampered payload', async () => {
    await assertRejects(hs, await signHs256(payload(), OTHER_SECRET), 'invalid token signature');
    const [h, , s] = (await signHs256(payload())).split('.');
    const forged = Buffer.from(JSON.stringify(payload({ [LOFT]: { caches: { '*': ['destroy_cache'] } } }))).toString('base64url');
    await assertRejects(hs, `${h}.${forged}.${s}`, 'invalid token signature');
  });

  it("rejects alg 'none'", async () => {
    await assertRejects(hs, craft({ alg: 'none', typ: 'JWT' }, payload()), "token algorithm 'none' is not allowed (this server accepts HS256)");
  });

  it('rejects an HS256 token at an RS256 authority, including one keyed with the public key (alg confusion)', async () => {
    const { privateKeyPem, publicKeyPem } = rsaPems();
    const rs = await TokenAuthority.create({ algorithm: 'RS256', privateKeyPem });
    const message = "token algorithm 'HS256' is not allowed (this server accepts RS256)";
    await assertRejects(rs, await signHs256(payload()), message);
    const confused = await new SignJWT(payload()).setProtectedHeader({ alg: 'HS256' }).sign(Buffer.from(publicKeyPem));
    await assertRejects(rs, confused, message);
  });

  it('rejects oversize tokens before parsing them', async () => {
    await assertRejects(hs, 'a'.repeat(8193), 'token is too large (max 8192 bytes)');
    const small = await TokenAuthority.create({ algorithm: 'HS256', hs256Secret: SECRET, maxTokenBytes: 256 });
    await assertRejects(small, await signHs256(payload({ padding: 'x'.repeat(300) })), 'token is too large (max 256 bytes)');
  });

  it('rejects garbage', async () => {
    const garbage: unknown[] = ['', 'abc', 'a.b', 'a.b.c.d', '...', 'a.b.c', '💥💥💥', 'Bearer x.y.z', ' x.y.z', 42, null, undefined, {}];
    for (const g of garbage) await assertRejects(hs, g, /^malformed token/);
    await assertRejects(hs, craft({ typ: 'JWT' }, payload(), 'c2ln'), "malformed token: header has no 'alg'");
  });

  it('rejects critical header extensions it does not understand', async () => {
    // jose will not sign this, so sign it by hand.
    const unsigned = craft({ alg: 'HS256', crit: ['exp-policy'], 'exp-policy': 1 }, payload()).slice(0, -1);
    const token = `${unsigned}.${createHmac('sha256', Buffer.from(SECRET, 'base64')).update(unsigned).digest('base64url')}`;
    await assertRejects(hs, token, /^unsupported token: /);
  });

  it('rejects a payload that is not a JSON object once the signature checks out', async () => {
    const notJson = await new CompactSign(new TextEncoder().encode('[1,2]')).setProtectedHeader({ alg: 'HS256' }).sign(Buffer.from(SECRET, 'base64'));
    await assertRejects(hs, notJson, 'malformed token: JWT Claims Set must be a top-level JSON object');
  });

  it('rejects missing or invalid required claims', async () => {
    for (const claim of ['sub', 'jti', 'exp']) {
      await assertRejects(hs, await signHs256(payload({ [claim]: undefined })), `token is missing required claim '${claim}'`);
    }
    await assertRejects(hs, await signHs256(payload({ [LOFT]: undefined })), `token is missing required claim '${LOFT}'`);
    await assertRejects(hs, await signHs256(payload({ sub: '' })), /^invalid 'sub' claim: must be a non-empty string/);
    await assertRejects(hs, await signHs256(payload({ sub: 'x'.repeat(257) })), /^invalid 'sub' claim/);
    await assertRejects(hs, await signHs256(payload({ sub: 7 })), /^invalid 'sub' claim/);
    await assertRejects(hs, await signHs256(payload({ jti: '' })), /^invalid 'jti' claim/);
    await assertRejects(hs, await signHs256(payload({ exp: 'tomorrow' })), "invalid 'exp' claim: must be a number");
  });

  it('rejects unknown permissions, invalid patterns and malformed Loft claims', async () => {
    const withAccess = (access: unknown) => signHs256(payload({ [LOFT]: access }));
    await assertRejects(hs, await withAccess({ caches: { main: ['pull', 'fly'] } }), "unknown permission 'fly'");
    await assertRejects(hs, await withAccess({ caches: { main: ['admin'] } }), /^unknown permission 'admin' \('admin' is the top-level flag/);
    await assertRejects(hs, await withAccess({ caches: { 'bad name': ['pull'] } }), /^invalid cache pattern 'bad name'/);
    await assertRejects(hs, await withAccess({ caches: { main: 'pull' } }), "invalid permissions for cache pattern 'main': must be an array of strings");
    await assertRejects(hs, await withAccess({ caches: ['main'] }), `invalid '${LOFT}' claim: 'caches' must be an object`);
    await assertRejects(hs, await withAccess({}), `invalid '${LOFT}' claim: 'caches' must be an object`);
    await assertRejects(hs, await withAccess({ caches: {}, admin: 'yes' }), `invalid '${LOFT}' claim: 'admin' must be a boolean`);
    await assertRejects(hs, await withAccess({ caches: {}, ips: ['10.0.0.0/8'] }), `invalid '${LOFT}' claim: unknown field 'ips'`);
    await assertRejects(hs, await withAccess('everything'), `invalid '${LOFT}' claim: must be an object`);
    const many = Object.fromEntries(Array.from({ length: 257 }, (_, i) => [`c${i}`, ['pull']]));
    await assertRejects(hs, await withAccess({ caches: many }), 'token has too many cache patterns (257, max 256)');
  });

  it('checks the issuer and audience when configured', async () => {
    const bound = await TokenAuthority.create({ algorithm: 'HS256', hs256Secret: SECRET, issuer: 'https://a.example', audience: 'loft' });
    await assertRejects(bound, await signHs256(payload({ iss: 'https://b.example', aud: 'loft' })), "wrong token issuer (expected 'https://a.example')");
    await assertRejects(bound, await signHs256(payload({ aud: 'loft' })), "token is missing required claim 'iss'");
    await assertRejects(bound, await signHs256(payload({ iss: 'https://a.example', aud: 'other' })), "wrong token audience (expected 'loft')");
    await assertRejects(bound, await signHs256(payload({ iss: 'https://a.example' })), "token is missing required claim 'aud'");
    const ok = await bound.verify(await signHs256(payload({ iss: 'https://a.example', aud: ['other', 'loft'] })));
    assert.equal(ok.sub, 'alice');
  });

  it('ignores iss and aud when not configured', async () => {
    assert.equal((await hs.verify(await signHs256(payload({ iss: 'anyone', aud: 'anything' })))).sub, 'alice');
  });
});

describe('verify() with exp outside the range of a Date (found by fuzzing)', () => {
  it('refuses with a TokenError, never a RangeError or an Invalid Date principal', async () => {
    const authority = await TokenAuthority.create({ algorithm: 'HS256', hs256Secret: SECRET });
    await assertRejects(authority, await signHs256(payload({ exp: -8640000000000.001 })), /^token expired at an invalid time$/);
    await assertRejects(authority, await signHs256(payload({ exp: 1e300 })), /^invalid 'exp' claim: not a representable time$/);
  });
});
