import assert from 'node:assert/strict';
import { generateKeyPairSync, randomUUID } from 'node:crypto';
import { SignJWT, type JWTPayload } from 'jose';
import { TokenError } from '../../../src/token/errors.ts';
import type { TokenAuthority } from '../../../src/token/authority.ts';

export const LOFT = 'https://loft.dev/v1';
export const SECRET = Buffer.alloc(32, 7).toString('base64');
export const OTHER_SECRET = Buffer.alloc(32, 9).toString('base64');

export const nowSeconds = () => Math.floor(Date.now() / 1000);

/** A valid payload; override or delete fields to build bad ones. */
export function payload(overrides: Record<string, unknown> = {}): JWTPayload {
  const now = nowSeconds();
  return {
    sub: 'alice',
    jti: randomUUID(),
    iat: now,
    nbf: now,
    exp: now + 3600,
    [LOFT]: { caches: { main: ['pull'] } },
    ...overrides,
  };
}

/** Signs an arbitrary payload with HS256, bypassing TokenAuthority's own validation. */
export async function signHs256(claims: JWTPayload, secretB64 = SECRET): Promise<string> {
  return new SignJWT(claims).setProtectedHeader({ alg: 'HS256' }).sign(Buffer.from(secretB64, 'base64'));
}

const b64url = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');

/** header.payload.signature by hand, e.g. for `alg: none`. */
export const craft = (header: unknown, claims: unknown, signature = '') => `${b64url(header)}.${b64url(claims)}.${signature}`;

export function rsaPems(modulusLength = 2048) {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength });
  return {
    privateKeyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    pkcs1Pem: privateKey.export({ type: 'pkcs1', format: 'pem' }).toString(),
    publicKeyPem: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
  };
}

export function ed25519Pems() {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  return {
    privateKeyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    publicKeyPem: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
  };
}

/** verify() must reject with a TokenError whose message matches. */
export async function assertRejects(authority: TokenAuthority, token: unknown, message: RegExp | string): Promise<void> {
  await assert.rejects(authority.verify(token as string), (e: unknown) => {
    assert.ok(e instanceof TokenError, `expected TokenError, got ${String(e)}`);
    if (typeof message === 'string') assert.equal(e.message, message);
    else assert.match(e.message, message);
    return true;
  });
}
