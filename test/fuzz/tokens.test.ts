// Property-based fuzzing of token parsing: Authorization headers, compact JWS strings, tampered
// tokens and signed tokens with arbitrary claims. Nothing but TokenError is ever thrown, and no
// token is accepted unless it was issued with valid claims by the configured key.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { TokenAuthority } from '../../src/token/authority.ts';
import { TokenError } from '../../src/token/errors.ts';
import { extractToken } from '../../src/token/header.ts';
import { isValidCachePattern } from '../../src/token/patterns.ts';
import { LOFT, SECRET, payload, signHs256 } from '../unit/token/helpers.ts';
import { fuzzParams } from './runs.ts';

const authority = await TokenAuthority.create({ algorithm: 'HS256', hs256Secret: SECRET });

async function outcome(token: string): Promise<'accepted' | 'refused'> {
  try {
    await authority.verify(token);
    return 'accepted';
  } catch (e) {
    assert.ok(e instanceof TokenError, `not a TokenError: ${String(e)}`);
    return 'refused';
  }
}

test('fuzz: Authorization headers yield a token, nothing, or a TokenError', () => {
  const header = fc.oneof(
    fc.string({ maxLength: 200, unit: 'binary' }),
    fc.tuple(fc.constantFrom('Bearer', 'Basic', 'bearer', 'BASIC', 'Digest', ''), fc.string({ maxLength: 100, unit: 'binary' })).map(([s, v]) => `${s} ${v}`),
    fc.string({ maxLength: 60, unit: 'binary' }).map((v) => `Basic ${Buffer.from(v).toString('base64')}`),
  );
  fc.assert(
    fc.property(header, (h) => {
      try {
        const token = extractToken(h);
        assert.ok(typeof token === 'string' && token.length > 0);
      } catch (e) {
        assert.ok(e instanceof TokenError, `not a TokenError: ${String(e)}`);
      }
    }),
    fuzzParams(2000),
  );
});

test('fuzz: random and JWS-shaped strings are never accepted', async () => {
  const segment = fc.string({ maxLength: 80, unit: fc.constantFrom(...'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'.split('')) });
  const jsonSegment = fc.jsonValue().map((v) => Buffer.from(JSON.stringify(v)).toString('base64url'));
  const token = fc.oneof(
    fc.string({ maxLength: 300, unit: 'binary' }),
    fc.tuple(segment, segment, segment).map((p) => p.join('.')),
    fc.tuple(jsonSegment, jsonSegment, segment).map((p) => p.join('.')),
    fc.tuple(fc.constantFrom('HS256', 'none', 'RS256', 'EdDSA', 'HS512'), jsonSegment, segment).map(([alg, p, s]) => `${Buffer.from(JSON.stringify({ alg })).toString('base64url')}.${p}.${s}`),
  );
  await fc.assert(
    fc.asyncProperty(token, async (t) => assert.equal(await outcome(t), 'refused', t)),
    fuzzParams(1000),
  );
});

test('fuzz: a valid token with any one character changed is refused', async () => {
  const issued = await authority.issue({ sub: 'fuzz', validitySeconds: 3600, caches: { main: ['pull', 'push'] } });
  const tok = issued.token;
  assert.equal(await outcome(tok), 'accepted');
  // The last character of a base64url segment can carry unused bits (a different character may
  // decode to the same bytes), so those positions are left alone.
  const segmentEnds = new Set([tok.indexOf('.') - 1, tok.lastIndexOf('.') - 1, tok.length - 1]);
  const positions = [...tok].map((_, i) => i).filter((i) => !segmentEnds.has(i));
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=+/ ';
  await fc.assert(
    fc.asyncProperty(fc.constantFrom(...positions), fc.constantFrom(...alphabet.split('')), async (i, c) => {
      fc.pre(tok[i] !== c);
      assert.equal(await outcome(tok.slice(0, i) + c + tok.slice(i + 1)), 'refused');
    }),
    fuzzParams(1000),
  );
});

test('fuzz: correctly signed tokens with arbitrary claims are accepted only when the claims are valid', async () => {
  const permission = fc.constantFrom('pull', 'push', 'delete', 'create_cache', 'configure_cache', 'configure_retention', 'destroy_cache', 'admin', '', 'PULL');
  const caches = fc.dictionary(fc.string({ maxLength: 12 }), fc.oneof(fc.array(permission, { maxLength: 4 }), fc.jsonValue()), { maxKeys: 4 });
  const loft = fc.oneof(fc.record({ caches, admin: fc.oneof(fc.boolean(), fc.jsonValue()) }, { requiredKeys: [] }), fc.jsonValue());
  const claims = fc.record(
    {
      sub: fc.oneof(fc.string({ maxLength: 20 }), fc.jsonValue()),
      jti: fc.oneof(fc.uuid(), fc.string({ maxLength: 10 }), fc.jsonValue()),
      exp: fc.oneof(fc.constant(Math.floor(Date.now() / 1000) + 3600), fc.integer(), fc.jsonValue()),
      loft,
    },
    { requiredKeys: [] },
  );
  await fc.assert(
    fc.asyncProperty(claims, async (c) => {
      const body: Record<string, unknown> = { ...payload() };
      for (const k of ['sub', 'jti', 'exp'] as const) if (k in c) body[k] = c[k];
      else delete body[k];
      if ('loft' in c) body[LOFT] = c.loft;
      let principal;
      try {
        principal = await authority.verify(await signHs256(body));
      } catch (e) {
        assert.ok(e instanceof TokenError, `not a TokenError: ${String(e)}`);
        return;
      }
      // Accepted: everything the principal is built from must have been valid.
      assert.ok(typeof body.sub === 'string' && body.sub.length > 0);
      assert.ok(typeof body.jti === 'string' && body.jti.length > 0);
      assert.ok(typeof body.exp === 'number' && body.exp * 1000 > Date.now() - 60_000);
      const access = body[LOFT] as { caches?: Record<string, unknown>; admin?: unknown };
      assert.ok(access.admin === undefined || typeof access.admin === 'boolean');
      for (const [pattern, perms] of Object.entries(access.caches ?? {})) {
        assert.ok(isValidCachePattern(pattern), pattern);
        assert.ok(Array.isArray(perms));
      }
      assert.equal(principal.isAdmin, access.admin === true);
    }),
    fuzzParams(1000),
  );
});
