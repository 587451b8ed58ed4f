import type { CacheGrants } from './claims.ts';
import { compareSpecificity, isValidCacheName, isWildcard, matchesPattern } from './patterns.ts';
import type { Permission } from './permissions.ts';

const NONE: ReadonlySet<Permission> = new Set();
/** Anonymous callers never expire. */
const FAR_FUTURE = new Date(8.64e15);

export interface PrincipalInit {
  sub: string;
  jti: string;
  expiresAt: Date;
  isAdmin: boolean;
  caches: CacheGrants;
}

/** Who is calling and what they may do; built from a verified token (or anonymous). */
export class Principal {
  readonly sub: string;
  readonly jti: string;
  readonly expiresAt: Date;
  /** May manage tokens. Grants nothing on caches by itself. */
  readonly isAdmin: boolean;
  /** No credentials were presented (distinguishes 401 from 403). */
  readonly isAnonymous: boolean;
  readonly #exact = new Map<string, ReadonlySet<Permission>>();
  /** Wildcards in resolution order, computed once so lookups never depend on claim key order. */
  readonly #wildcards: Array<[string, ReadonlySet<Permission>]> = [];

  constructor(init: PrincipalInit, isAnonymous = false) {
    this.sub = init.sub;
    this.jti = init.jti;
    this.expiresAt = init.expiresAt;
    this.isAdmin = init.isAdmin;
    this.isAnonymous = isAnonymous;
    for (const [pattern, perms] of init.caches) {
      if (isWildcard(pattern)) this.#wildcards.push([pattern, perms]);
      else this.#exact.set(pattern, perms);
    }
    this.#wildcards.sort(([a], [b]) => compareSpecificity(a, b));
  }

  static anonymous(): Principal {
    return new Principal({ sub: 'anonymous', jti: '', expiresAt: FAR_FUTURE, isAdmin: false, caches: new Map() }, true);
  }

  /**
   * Exact key first, else the most specific matching wildcard (ties: lowest
   * pattern string). One pattern decides; permissions are never merged, so
   * `{"team-*": ["pull"], "*": ["push"]}` gives team-x pull only.
   */
  permissionsFor(cacheName: string): ReadonlySet<Permission> {
    if (!isValidCacheName(cacheName)) return NONE;
    const exact = this.#exact.get(cacheName);
    if (exact) return exact;
    for (const [pattern, perms] of this.#wildcards) {
      if (matchesPattern(pattern, cacheName)) return perms;
    }
    return NONE;
  }

  can(cacheName: string, permission: Permission): boolean {
    return this.permissionsFor(cacheName).has(permission);
  }

  /** Any permission at all lets the caller learn the cache exists (403 rather than 404). */
  hasAnyOn(cacheName: string): boolean {
    return this.permissionsFor(cacheName).size > 0;
  }
}
