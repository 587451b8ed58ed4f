import { createPrivateKey, createPublicKey, generateKeyPairSync, sign, verify, type KeyObject } from 'node:crypto';
import { decodeBase64Strict } from './base64.ts';
import { NixFormatError } from './errors.ts';
import { narFingerprint } from './fingerprint.ts';
import type { NarInfo } from './narinfo.ts';
import { DEFAULT_STORE_DIR } from './store-path.ts';

const SEED_BYTES = 32;
const PUBLIC_BYTES = 32;
const SIGNATURE_BYTES = 64;
/** DER of an Ed25519 PKCS#8 PrivateKeyInfo up to its 32-byte seed (RFC 8410). */
const ED25519_PKCS8_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');

/** Splits "name:base64" and checks the key name, which Nix uses to pick the key for a Sig line. */
function splitNamed(s: string, what: string): [string, string] {
  const colon = s.indexOf(':');
  if (colon === -1) throw new NixFormatError(`invalid ${what}: expected 'name:base64'`);
  const name = s.slice(0, colon);
  if (name === '') throw new NixFormatError(`invalid ${what}: empty key name`);
  return [name, s.slice(colon + 1)];
}

function checkName(name: string): void {
  if (name === '' || name.includes(':')) {
    throw new NixFormatError(`invalid key name '${name}': must be non-empty and contain no ':'`);
  }
}

function rawPublicKey(key: KeyObject): Buffer {
  return Buffer.from(key.export({ format: 'jwk' }).x!, 'base64url');
}

export class PublicKey {
  readonly name: string;
  readonly #raw: Buffer;
  readonly #key: KeyObject;

  private constructor(name: string, raw: Buffer) {
    this.name = name;
    this.#raw = raw;
    this.#key = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: raw.toString('base64url') }, format: 'jwk' });
  }

  /** Parses Nix's "name:base64(32-byte ed25519 public key)". */
  static parse(s: string): PublicKey {
    const [name, b64] = splitNamed(s.trim(), 'public key');
    const raw = decodeBase64Strict(b64, `public key '${name}'`);
    if (raw.length !== PUBLIC_BYTES) {
      throw new NixFormatError(`invalid public key '${name}': expected ${PUBLIC_BYTES} bytes, got ${raw.length}`);
    }
    return new PublicKey(name, raw);
  }

  /** False for another key's signature or a malformed one: a narinfo's Sig lines are untrusted input. */
  verify(data: string, sig: string): boolean {
    const colon = sig.indexOf(':');
    if (colon === -1 || sig.slice(0, colon) !== this.name) return false;
    let bytes: Buffer;
    try {
      bytes = decodeBase64Strict(sig.slice(colon + 1), 'signature');
    } catch {
      return false;
    }
    if (bytes.length !== SIGNATURE_BYTES) return false;
    return verify(null, Buffer.from(data, 'utf8'), this.#key, bytes);
  }

  toString(): string {
    return `${this.name}:${this.#raw.toString('base64')}`;
  }
}

export class SigningKey {
  readonly name: string;
  readonly #key: KeyObject;
  readonly #public: PublicKey;

  private constructor(name: string, key: KeyObject) {
    checkName(name);
    this.name = name;
    this.#key = key;
    this.#public = PublicKey.parse(`${name}:${rawPublicKey(key).toString('base64')}`);
  }

  /** Parses Nix's secret key format "name:base64(seed ‖ public key)" (libsodium's 64-byte secret key). */
  static parse(secret: string): SigningKey {
    const [name, b64] = splitNamed(secret.trim(), 'secret key');
    const raw = decodeBase64Strict(b64, `secret key '${name}'`);
    if (raw.length !== SEED_BYTES + PUBLIC_BYTES) {
      throw new NixFormatError(`invalid secret key '${name}': expected 64 bytes, got ${raw.length}`);
    }
    const seed = raw.subarray(0, SEED_BYTES);
    const pub = raw.subarray(SEED_BYTES);
    // The key is made from the seed alone (PKCS#8), then its public half compared with the stored one:
    // a mismatch would produce signatures nobody can verify (Node 24 refuses such a JWK, Node 20 took it).
    const key = createPrivateKey({ key: Buffer.concat([ED25519_PKCS8_PREFIX, seed]), format: 'der', type: 'pkcs8' });
    if (!rawPublicKey(createPublicKey(key)).equals(pub)) {
      throw new NixFormatError(`invalid secret key '${name}': public half does not match the seed`);
    }
    return new SigningKey(name, key);
  }

  static generate(name: string): SigningKey {
    checkName(name);
    return new SigningKey(name, generateKeyPairSync('ed25519').privateKey);
  }

  sign(data: string): string {
    return `${this.name}:${sign(null, Buffer.from(data, 'utf8'), this.#key).toString('base64')}`;
  }

  publicKey(): PublicKey {
    return this.#public;
  }

  toString(): string {
    const jwk = this.#key.export({ format: 'jwk' });
    const raw = Buffer.concat([Buffer.from(jwk.d!, 'base64url'), Buffer.from(jwk.x!, 'base64url')]);
    return `${this.name}:${raw.toString('base64')}`;
  }
}

/** True if any Sig line verifies under any of the given keys. */
export function verifyNarInfoSignature(info: NarInfo, keys: PublicKey[], storeDir = DEFAULT_STORE_DIR): boolean {
  const fingerprint = narFingerprint(info.storePath, info.narHash, info.narSize, info.references, storeDir);
  return info.sigs.some((sig) => keys.some((key) => key.verify(fingerprint, sig)));
}
