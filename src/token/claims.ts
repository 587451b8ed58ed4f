import { TokenError } from './errors.ts';
import { assertValidCachePattern } from './patterns.ts';
import { ALL_PERMISSIONS, isPermission, type Permission } from './permissions.ts';

/** Namespaced like Attic's `https://jwt.attic.rs/v1`, because some IdPs (Auth0) drop bare custom claims. */
export const LOFT_CLAIM = 'https://loft.dev/v1';

export const MAX_PATTERNS = 256;
export const MAX_SUB_LENGTH = 256;
export const MAX_JTI_LENGTH = 256;

/** The Loft claim as it appears in the JWT payload. */
export interface LoftAccess {
  /** Manage tokens (issue, list, revoke). Global; omitted when false. */
  admin?: boolean;
  caches: Record<string, Permission[]>;
}

export interface LoftClaims {
  sub: string;
  jti: string;
  iat: number;
  nbf: number;
  exp: number;
  iss?: string;
  aud?: string;
  [LOFT_CLAIM]: LoftAccess;
}

/** Validated form: pattern → permission set. */
export type CacheGrants = ReadonlyMap<string, ReadonlySet<Permission>>;

export interface Access {
  admin: boolean;
  caches: CacheGrants;
}

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/** Non-empty bounded string; used for `sub` and `jti`, on issue and on verify. */
export function checkIdClaim(claim: 'sub' | 'jti', value: unknown): string {
  const max = claim === 'sub' ? MAX_SUB_LENGTH : MAX_JTI_LENGTH;
  if (typeof value !== 'string' || value.length === 0 || value.length > max) {
    throw new TokenError(`invalid '${claim}' claim: must be a non-empty string of at most ${max} characters`);
  }
  return value;
}

/**
 * Parses the Loft claim. Fails closed: unknown permissions, unknown fields
 * inside the claim (they could be restrictions this version does not know)
 * and invalid patterns reject the whole token rather than being skipped.
 */
export function parseAccess(value: unknown): Access {
  if (value === undefined) throw new TokenError(`token is missing required claim '${LOFT_CLAIM}'`);
  if (!isObject(value)) throw new TokenError(`invalid '${LOFT_CLAIM}' claim: must be an object`);
  for (const key of Object.keys(value)) {
    if (key !== 'admin' && key !== 'caches') {
      throw new TokenError(`invalid '${LOFT_CLAIM}' claim: unknown field '${key.slice(0, 64)}'`);
    }
  }
  if (value.admin !== undefined && typeof value.admin !== 'boolean') {
    throw new TokenError(`invalid '${LOFT_CLAIM}' claim: 'admin' must be a boolean`);
  }
  if (!isObject(value.caches)) {
    throw new TokenError(`invalid '${LOFT_CLAIM}' claim: 'caches' must be an object`);
  }
  const entries = Object.entries(value.caches);
  if (entries.length > MAX_PATTERNS) {
    throw new TokenError(`token has too many cache patterns (${entries.length}, max ${MAX_PATTERNS})`);
  }
  const caches = new Map<string, ReadonlySet<Permission>>();
  for (const [pattern, perms] of entries) {
    assertValidCachePattern(pattern);
    caches.set(pattern, parsePermissions(pattern, perms));
  }
  return { admin: value.admin === true, caches };
}

function parsePermissions(pattern: string, perms: unknown): ReadonlySet<Permission> {
  if (!Array.isArray(perms)) {
    throw new TokenError(`invalid permissions for cache pattern '${pattern}': must be an array of strings`);
  }
  const set = new Set<Permission>();
  for (const p of perms) {
    if (!isPermission(p)) {
      const hint = p === 'admin' ? " ('admin' is the top-level flag, not a cache permission)" : '';
      throw new TokenError(`unknown permission '${String(p).slice(0, 64)}'${hint}`);
    }
    set.add(p);
  }
  return set;
}

/** Canonical JSON form of validated access: permissions deduplicated, in ALL_PERMISSIONS order. */
export function accessToClaim(access: Access): LoftAccess {
  const caches = Object.fromEntries(
    [...access.caches].map(([pattern, perms]) => [pattern, ALL_PERMISSIONS.filter((p) => perms.has(p))]),
  );
  return access.admin ? { admin: true, caches } : { caches };
}
