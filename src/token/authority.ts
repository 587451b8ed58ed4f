import { randomUUID } from 'node:crypto';
import { decodeProtectedHeader, jwtVerify, SignJWT, type JWTPayload } from 'jose';
import { accessToClaim, checkIdClaim, LOFT_CLAIM, parseAccess, type LoftClaims } from './claims.ts';
import { formatDuration } from './duration.ts';
import { TokenError } from './errors.ts';
import { toTokenError } from './jose-errors.ts';
import { loadKeys, type TokenAlgorithm, type TokenKeys } from './keys.ts';
import type { Permission } from './permissions.ts';
import { Principal } from './principal.ts';

export interface TokenConfig {
  algorithm: TokenAlgorithm;
  /** base64, at least 32 bytes decoded. */
  hs256Secret?: string;
  /** RS256 / EdDSA signing key (PKCS#8 PEM; PKCS#1 also accepted). */
  privateKeyPem?: string;
  /** Verify-only mode: api replicas without the signing key (SPKI PEM). */
  publicKeyPem?: string;
  /** When set, tokens must carry exactly this iss, and issued tokens get it. */
  issuer?: string;
  /** When set, tokens must list it in aud, and issued tokens get it. */
  audience?: string;
  /** Default 8192; longer tokens are rejected before any parsing. */
  maxTokenBytes?: number;
  /** Default 30. */
  clockToleranceSeconds?: number;
  /** Longest validity issue() grants; default one year. */
  maxValiditySeconds?: number;
}

export const DEFAULT_MAX_VALIDITY_SECONDS = 365 * 86400;

export interface IssueOptions {
  sub: string;
  validitySeconds: number;
  caches: Record<string, Permission[]>;
  admin?: boolean;
  /** Start of validity (default now); the token lasts validitySeconds from here. */
  notBefore?: Date;
}

export interface IssuedToken {
  token: string;
  jti: string;
  expiresAt: Date;
  claims: LoftClaims;
}

/** Cheap shape check so oversized or junk input never reaches JSON parsing; empty signature is let through for a precise "alg none" message. */
const COMPACT_JWS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;

const epochSeconds = (d: Date) => Math.floor(d.getTime() / 1000);

/** Issues and verifies Loft tokens for one configured algorithm and key. */
export class TokenAuthority {
  readonly canSign: boolean;
  readonly #cfg: TokenConfig;
  readonly #keys: TokenKeys;
  readonly #maxTokenBytes: number;
  readonly #clockTolerance: number;

  private constructor(cfg: TokenConfig, keys: TokenKeys) {
    this.#cfg = cfg;
    this.#keys = keys;
    this.canSign = keys.sign !== undefined;
    this.#maxTokenBytes = cfg.maxTokenBytes ?? 8192;
    this.#clockTolerance = cfg.clockToleranceSeconds ?? 30;
  }

  /** Throws a plain Error naming the problem when the config is inconsistent. */
  static async create(cfg: TokenConfig): Promise<TokenAuthority> {
    const { maxTokenBytes, clockToleranceSeconds, issuer, audience } = cfg;
    if (maxTokenBytes !== undefined && !(Number.isSafeInteger(maxTokenBytes) && maxTokenBytes >= 256)) {
      throw new Error('token config: maxTokenBytes must be an integer of at least 256');
    }
    if (clockToleranceSeconds !== undefined && !(Number.isFinite(clockToleranceSeconds) && clockToleranceSeconds >= 0)) {
      throw new Error('token config: clockToleranceSeconds must be a non-negative number');
    }
    if (issuer === '') throw new Error('token config: issuer must not be empty (omit it instead)');
    if (audience === '') throw new Error('token config: audience must not be empty (omit it instead)');
    return new TokenAuthority(cfg, await loadKeys(cfg));
  }

  async issue(opts: IssueOptions): Promise<IssuedToken> {
    if (!this.#keys.sign) {
      throw new Error('cannot issue tokens: this server is in verify-only mode (publicKeyPem without privateKeyPem)');
    }
    const sub = checkIdClaim('sub', opts.sub);
    if (!Number.isSafeInteger(opts.validitySeconds) || opts.validitySeconds <= 0) {
      throw new RangeError('validitySeconds must be a positive integer');
    }
    const max = this.#cfg.maxValiditySeconds ?? DEFAULT_MAX_VALIDITY_SECONDS;
    if (opts.validitySeconds > max) {
      throw new RangeError(`token validity ${formatDuration(opts.validitySeconds)} exceeds this server's maximum of ${formatDuration(max)} (auth.max_token_validity)`);
    }
    if (opts.notBefore && Number.isNaN(opts.notBefore.getTime())) throw new RangeError('notBefore is an invalid date');
    // Same validator as verify(), so an issued token is always one we accept.
    const access = parseAccess({ caches: opts.caches, ...(opts.admin ? { admin: true } : {}) });

    const iat = epochSeconds(new Date());
    const nbf = opts.notBefore ? epochSeconds(opts.notBefore) : iat;
    const exp = nbf + opts.validitySeconds;
    if (exp <= iat) throw new RangeError('token would already be expired (notBefore + validitySeconds is in the past)');
    const jti = randomUUID();
    const claims: LoftClaims = {
      sub,
      jti,
      iat,
      nbf,
      exp,
      ...(this.#cfg.issuer !== undefined ? { iss: this.#cfg.issuer } : {}),
      ...(this.#cfg.audience !== undefined ? { aud: this.#cfg.audience } : {}),
      [LOFT_CLAIM]: accessToClaim(access),
    };
    const token = await new SignJWT(claims as unknown as JWTPayload)
      .setProtectedHeader({ alg: this.#cfg.algorithm, typ: 'JWT' })
      .sign(this.#keys.sign);
    if (token.length > this.#maxTokenBytes) {
      throw new RangeError(`token would be ${token.length} bytes, over maxTokenBytes (${this.#maxTokenBytes}); grant fewer patterns`);
    }
    return { token, jti, expiresAt: new Date(exp * 1000), claims };
  }

  /** Only ever throws TokenError. */
  async verify(token: string): Promise<Principal> {
    try {
      return await this.#verify(token);
    } catch (e) {
      throw toTokenError(e, this.#cfg);
    }
  }

  async #verify(token: string): Promise<Principal> {
    if (typeof token !== 'string') throw new TokenError('malformed token: not a string');
    if (token.length > this.#maxTokenBytes || Buffer.byteLength(token) > this.#maxTokenBytes) {
      throw new TokenError(`token is too large (max ${this.#maxTokenBytes} bytes)`);
    }
    if (!COMPACT_JWS.test(token)) throw new TokenError('malformed token: expected header.payload.signature in base64url');
    // Checked before jose for a precise message; jose enforces it again via `algorithms`.
    const { alg } = decodeProtectedHeader(token);
    if (typeof alg !== 'string') throw new TokenError("malformed token: header has no 'alg'");
    if (alg !== this.#cfg.algorithm) {
      throw new TokenError(`token algorithm '${alg.slice(0, 32)}' is not allowed (this server accepts ${this.#cfg.algorithm})`);
    }
    const { payload } = await jwtVerify(token, this.#keys.verify, {
      algorithms: [this.#cfg.algorithm],
      issuer: this.#cfg.issuer,
      audience: this.#cfg.audience,
      clockTolerance: this.#clockTolerance,
      requiredClaims: ['exp', 'sub', 'jti'],
    });
    const access = parseAccess(payload[LOFT_CLAIM]);
    const expiresAt = new Date(payload.exp! * 1000);
    if (Number.isNaN(expiresAt.getTime())) throw new TokenError("invalid 'exp' claim: not a representable time");
    return new Principal({
      sub: checkIdClaim('sub', payload.sub),
      jti: checkIdClaim('jti', payload.jti),
      expiresAt,
      isAdmin: access.admin,
      caches: access.caches,
    });
  }
}
