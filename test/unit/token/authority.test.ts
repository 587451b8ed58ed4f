import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { decodeProtectedHeader } from 'jose';
import { TokenAuthority, type TokenConfig } from '../../../src/token/authority.ts';
import { TokenError } from '../../../src/token/errors.ts';
import { generateHs256Secret } from '../../../src/token/keys.ts';
import { ed25519Pems, LOFT, nowSeconds, rsaPems, SECRET } from './helpers.ts';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
const rsa = rsaPems();
const ed = ed25519Pems();

const signers: Array<[string, TokenConfig, TokenConfig]> = [
  ['HS256', { algorithm: 'HS256', hs256Secret: SECRET }, { algorithm: 'HS256', hs256Secret: SECRET }],
  ['RS256', { algorithm: 'RS256', privateKeyPem: rsa.privateKeyPem }, { algorithm: 'RS256', publicKeyPem: rsa.publicKeyPem }],
  ['EdDSA', { algorithm: 'EdDSA', privateKeyPem: ed.privateKeyPem }, { algorithm: 'EdDSA', publicKeyPem: ed.publicKeyPem }],
];

describe('TokenAuthority round trips', () => {
  for (const [alg, signCfg, verifyCfg] of signers) {
    it(`${alg}: issues a token that verifies, here and on a replica`, async () => {
      const signer = await TokenAuthority.create(signCfg);
      const replica = await TokenAuthority.create(verifyCfg);
      assert.ok(signer.canSign);
      const issued = await signer.issue({ sub: 'alice', validitySeconds: 3600, caches: { 'team-*': ['push', 'pull', 'pull'] }, admin: true });
      assert.equal(decodeProtectedHeader(issued.token).alg, alg);
      assert.equal(decodeProtectedHeader(issued.token).typ, 'JWT');
      for (const authority of [signer, replica]) {
        const p = await authority.verify(issued.token);
        assert.equal(p.sub, 'alice');
        assert.equal(p.jti, issued.jti);
        assert.equal(p.expiresAt.getTime(), issued.expiresAt.getTime());
        assert.ok(p.isAdmin);
        assert.ok(!p.isAnonymous);
        assert.deepEqual([...p.permissionsFor('team-a')], ['pull', 'push']);
      }
    });
  }

  it('issues canonical claims: uuid jti, iat = nbf, exp = nbf + validity, deduplicated ordered permissions', async () => {
    const authority = await TokenAuthority.create({ algorithm: 'HS256', hs256Secret: SECRET });
    const before = nowSeconds();
    const { claims, jti, expiresAt } = await authority.issue({ sub: 'ci', validitySeconds: 600, caches: { main: ['push', 'pull', 'push'] } });
    assert.match(jti, UUID);
    assert.equal(claims.jti, jti);
    assert.ok(claims.iat >= before && claims.iat <= nowSeconds());
    assert.equal(claims.nbf, claims.iat);
    assert.equal(claims.exp, claims.nbf + 600);
    assert.equal(expiresAt.getTime(), claims.exp * 1000);
    assert.deepEqual(claims[LOFT], { caches: { main: ['pull', 'push'] } });
    assert.equal(claims.iss, undefined);
    assert.equal(claims.aud, undefined);
  });

  it('gives every token a different jti', async () => {
    const authority = await TokenAuthority.create({ algorithm: 'HS256', hs256Secret: SECRET });
    const a = await authority.issue({ sub: 'ci', validitySeconds: 60, caches: {} });
    const b = await authority.issue({ sub: 'ci', validitySeconds: 60, caches: {} });
    assert.notEqual(a.jti, b.jti);
  });

  it('stamps and then requires the configured issuer and audience', async () => {
    const authority = await TokenAuthority.create({ algorithm: 'HS256', hs256Secret: SECRET, issuer: 'https://cache.example', audience: 'loft' });
    const { token, claims } = await authority.issue({ sub: 'ci', validitySeconds: 60, caches: {} });
    assert.equal(claims.iss, 'https://cache.example');
    assert.equal(claims.aud, 'loft');
    assert.equal((await authority.verify(token)).sub, 'ci');
  });

  it('honours notBefore: the token is not valid yet and lasts validitySeconds from it', async () => {
    const authority = await TokenAuthority.create({ algorithm: 'HS256', hs256Secret: SECRET });
    const start = new Date(Date.now() + 3600_000);
    const { token, claims } = await authority.issue({ sub: 'ci', validitySeconds: 60, caches: {}, notBefore: start });
    assert.equal(claims.exp, claims.nbf + 60);
    await assert.rejects(authority.verify(token), (e: unknown) => e instanceof TokenError && /^token is not valid before /.test(e.message));
  });

  it('accepts an RSA key in PKCS#1 PEM (Attic-style)', async () => {
    const authority = await TokenAuthority.create({ algorithm: 'RS256', privateKeyPem: rsa.pkcs1Pem, publicKeyPem: rsa.publicKeyPem });
    const { token } = await authority.issue({ sub: 'ci', validitySeconds: 60, caches: {} });
    assert.equal((await authority.verify(token)).sub, 'ci');
  });
});

describe('verify-only mode', () => {
  for (const [alg, , verifyCfg] of signers.slice(1)) {
    it(`${alg}: a public key alone cannot issue`, async () => {
      const replica = await TokenAuthority.create(verifyCfg);
      assert.equal(replica.canSign, false);
      await assert.rejects(replica.issue({ sub: 'x', validitySeconds: 60, caches: {} }), /verify-only mode/);
    });
  }
});

describe('issue() input checks', () => {
  const authority = () => TokenAuthority.create({ algorithm: 'HS256', hs256Secret: SECRET });

  it('rejects invalid patterns, unknown permissions and too many patterns with TokenError', async () => {
    const a = await authority();
    const issue = (caches: Record<string, string[]>) => a.issue({ sub: 'x', validitySeconds: 60, caches: caches as never });
    await assert.rejects(issue({ '-bad': ['pull'] }), (e: unknown) => e instanceof TokenError && /^invalid cache pattern '-bad'/.test(e.message));
    await assert.rejects(issue({ main: ['fly'] }), (e: unknown) => e instanceof TokenError && e.message === "unknown permission 'fly'");
    const many = Object.fromEntries(Array.from({ length: 257 }, (_, i) => [`c${i}`, ['pull']]));
    await assert.rejects(issue(many), (e: unknown) => e instanceof TokenError && /too many cache patterns \(257, max 256\)/.test(e.message));
  });

  it('rejects a bad sub or validity', async () => {
    const a = await authority();
    await assert.rejects(a.issue({ sub: '', validitySeconds: 60, caches: {} }), /invalid 'sub' claim/);
    await assert.rejects(a.issue({ sub: 'x'.repeat(257), validitySeconds: 60, caches: {} }), /invalid 'sub' claim/);
    await assert.rejects(a.issue({ sub: 'x', validitySeconds: 0, caches: {} }), /validitySeconds must be a positive integer/);
    await assert.rejects(a.issue({ sub: 'x', validitySeconds: 1.5, caches: {} }), /validitySeconds must be a positive integer/);
    await assert.rejects(a.issue({ sub: 'x', validitySeconds: 60, caches: {}, notBefore: new Date(0) }), /already be expired/);
  });

  it('refuses to issue a token it would reject as oversize', async () => {
    const a = await TokenAuthority.create({ algorithm: 'HS256', hs256Secret: SECRET, maxTokenBytes: 512 });
    const caches = Object.fromEntries(Array.from({ length: 20 }, (_, i) => [`cache-number-${i}`, ['pull', 'push']] as [string, ['pull', 'push']]));
    await assert.rejects(a.issue({ sub: 'x', validitySeconds: 60, caches }), /over maxTokenBytes \(512\)/);
  });
});

describe('TokenAuthority.create config checks', () => {
  const weak = rsaPems(1024);
  const otherEd = ed25519Pems();
  const cases: Array<[string, TokenConfig, RegExp]> = [
    ['RS256 with only an HS256 secret', { algorithm: 'RS256', hs256Secret: SECRET }, /RS256 does not use hs256Secret/],
    ['RS256 without keys', { algorithm: 'RS256' }, /RS256 requires privateKeyPem .* or publicKeyPem/],
    ['HS256 without secret', { algorithm: 'HS256' }, /HS256 requires hs256Secret/],
    ['HS256 with a PEM key', { algorithm: 'HS256', hs256Secret: SECRET, privateKeyPem: rsa.privateKeyPem }, /HS256 uses hs256Secret only/],
    ['HS256 short secret', { algorithm: 'HS256', hs256Secret: Buffer.alloc(16).toString('base64') }, /decodes to 16 bytes; at least 32/],
    ['HS256 secret not base64', { algorithm: 'HS256', hs256Secret: 'not base64!'.repeat(8) }, /not valid base64/],
    ['EdDSA with an RSA key', { algorithm: 'EdDSA', privateKeyPem: rsa.privateKeyPem }, /EdDSA needs an Ed25519 key, got rsa/],
    ['RS256 with an Ed25519 key', { algorithm: 'RS256', publicKeyPem: ed.publicKeyPem }, /RS256 needs an RSA key, got ed25519/],
    ['RS256 with a 1024-bit key', { algorithm: 'RS256', privateKeyPem: weak.privateKeyPem }, /1024 bits; at least 2048/],
    ['mismatched key pair', { algorithm: 'EdDSA', privateKeyPem: ed.privateKeyPem, publicKeyPem: otherEd.publicKeyPem }, /does not match/],
    ['private key given as public key', { algorithm: 'EdDSA', publicKeyPem: ed.privateKeyPem }, /publicKeyPem contains a private key/],
    ['garbage PEM', { algorithm: 'EdDSA', privateKeyPem: 'hello' }, /privateKeyPem is not a readable unencrypted PEM key/],
    ['unknown algorithm', { algorithm: 'ES256' as never, hs256Secret: SECRET }, /unsupported algorithm 'ES256'/],
    ['tiny maxTokenBytes', { algorithm: 'HS256', hs256Secret: SECRET, maxTokenBytes: 10 }, /maxTokenBytes/],
    ['negative clock tolerance', { algorithm: 'HS256', hs256Secret: SECRET, clockToleranceSeconds: -1 }, /clockToleranceSeconds/],
    ['empty issuer', { algorithm: 'HS256', hs256Secret: SECRET, issuer: '' }, /issuer must not be empty/],
  ];
  for (const [name, cfg, message] of cases) {
    it(`rejects ${name}`, async () => {
      await assert.rejects(TokenAuthority.create(cfg), (e: unknown) => e instanceof Error && !(e instanceof TokenError) && message.test(e.message));
    });
  }
});

describe('generateHs256Secret', () => {
  it('returns base64 of 32 fresh random bytes that HS256 accepts', async () => {
    const a = generateHs256Secret();
    assert.equal(Buffer.from(a, 'base64').length, 32);
    assert.notEqual(a, generateHs256Secret());
    assert.ok((await TokenAuthority.create({ algorithm: 'HS256', hs256Secret: a })).canSign);
  });
});
