import { createPrivateKey, createPublicKey, randomBytes, type KeyObject } from 'node:crypto';
import { importPKCS8, importSPKI, type CryptoKey } from 'jose';
import { decodeBase64Strict } from './base64.ts';

export type TokenAlgorithm = 'HS256' | 'RS256' | 'EdDSA';

export interface KeyConfig {
  algorithm: TokenAlgorithm;
  hs256Secret?: string;
  privateKeyPem?: string;
  publicKeyPem?: string;
}

export interface TokenKeys {
  /** Absent in verify-only mode (replicas holding only the public key). */
  sign?: CryptoKey | Uint8Array;
  verify: CryptoKey | Uint8Array;
}

const MIN_HS256_BYTES = 32;
const MIN_RSA_BITS = 2048;

/** A fresh HS256 secret for `hs256Secret`: base64 of 32 random bytes. */
export function generateHs256Secret(): string {
  return randomBytes(MIN_HS256_BYTES).toString('base64');
}

const configError = (msg: string) => new Error(`token config: ${msg}`);

/** Validates the key material for the algorithm and imports it; throws a config error naming the problem. */
export async function loadKeys(cfg: KeyConfig): Promise<TokenKeys> {
  if (cfg.algorithm === 'HS256') return loadHs256(cfg);
  if (cfg.algorithm === 'RS256' || cfg.algorithm === 'EdDSA') return loadAsymmetric(cfg, cfg.algorithm);
  throw configError(`unsupported algorithm '${String(cfg.algorithm)}' (use HS256, RS256 or EdDSA)`);
}

function loadHs256(cfg: KeyConfig): TokenKeys {
  if (cfg.privateKeyPem !== undefined || cfg.publicKeyPem !== undefined) {
    throw configError('HS256 uses hs256Secret only; remove privateKeyPem/publicKeyPem or switch algorithm to RS256/EdDSA');
  }
  if (cfg.hs256Secret === undefined) throw configError('HS256 requires hs256Secret (base64 of at least 32 bytes)');
  const secret = decodeBase64Strict(cfg.hs256Secret.trim());
  if (!secret) throw configError('hs256Secret is not valid base64');
  if (secret.length < MIN_HS256_BYTES) {
    throw configError(`hs256Secret decodes to ${secret.length} bytes; at least ${MIN_HS256_BYTES} are required`);
  }
  const key = new Uint8Array(secret);
  return { sign: key, verify: key };
}

async function loadAsymmetric(cfg: KeyConfig, alg: 'RS256' | 'EdDSA'): Promise<TokenKeys> {
  if (cfg.hs256Secret !== undefined) {
    throw configError(`${alg} does not use hs256Secret; set privateKeyPem (signing) or publicKeyPem (verify-only)`);
  }
  if (cfg.privateKeyPem === undefined && cfg.publicKeyPem === undefined) {
    throw configError(`${alg} requires privateKeyPem (signing) or publicKeyPem (verify-only)`);
  }
  const priv = cfg.privateKeyPem === undefined ? undefined : parsePem(() => createPrivateKey(cfg.privateKeyPem!), 'privateKeyPem');
  if (cfg.publicKeyPem !== undefined && /PRIVATE KEY-----/.test(cfg.publicKeyPem)) {
    throw configError('publicKeyPem contains a private key; give replicas the public key only');
  }
  const pub = cfg.publicKeyPem === undefined ? undefined : parsePem(() => createPublicKey(cfg.publicKeyPem!), 'publicKeyPem');
  const derived = priv ? createPublicKey(priv) : pub!;
  if (priv && pub && !derived.equals(pub)) throw configError('publicKeyPem does not match privateKeyPem');
  checkKeyType(derived, alg);

  // Re-export so PKCS#1 / SEC1 PEMs (Attic's RS256 keys are PKCS#1) are accepted too.
  const spki = derived.export({ type: 'spki', format: 'pem' }).toString();
  return {
    sign: priv ? await importPKCS8(priv.export({ type: 'pkcs8', format: 'pem' }).toString(), alg) : undefined,
    verify: await importSPKI(spki, alg),
  };
}

function parsePem<T>(parse: () => T, field: string): T {
  try {
    return parse();
  } catch (e) {
    throw configError(`${field} is not a readable unencrypted PEM key (${(e as Error).message})`);
  }
}

function checkKeyType(key: KeyObject, alg: 'RS256' | 'EdDSA'): void {
  if (alg === 'EdDSA') {
    if (key.asymmetricKeyType !== 'ed25519') throw configError(`EdDSA needs an Ed25519 key, got ${key.asymmetricKeyType}`);
    return;
  }
  if (key.asymmetricKeyType !== 'rsa') throw configError(`RS256 needs an RSA key, got ${key.asymmetricKeyType}`);
  const bits = key.asymmetricKeyDetails?.modulusLength ?? 0;
  if (bits < MIN_RSA_BITS) throw configError(`RS256 key is ${bits} bits; at least ${MIN_RSA_BITS} are required`);
}
