import { timingSafeEqual, createHash } from 'node:crypto';
import type { FastifyRequest } from 'fastify';
import {
  ALL_PERMISSIONS,
  authenticate,
  extractToken,
  Principal,
  type Permission,
  type RevocationList,
  type TokenAuthority,
} from '../token/index.ts';
import type { CacheRow } from '../db/schema.ts';
import { badRequest, forbidden, notFound, unauthorized } from '../core/errors.ts';
import { invalidCacheNameMessage } from '../core/caches.ts';
import { isValidCacheName } from '../token/patterns.ts';

declare module 'fastify' {
  interface FastifyRequest {
    principal?: Principal;
    /** The cache a permission check let this request act on (for the metrics and the usage history). */
    cache?: CacheRow;
  }
}

/**
 * The one place that decides who may do what. Every route calls
 * `requireOnCache` or `requireAdmin`; nothing else checks permissions.
 *
 * Private caches never reveal what they hold: a caller with no permission on
 * the cache gets 401 (anonymous) or 403 (authenticated) whether the cache or
 * the path exists or not, before anything is looked up.
 */
export class AccessControl {
  private readonly rootDigest?: Buffer;

  constructor(
    private readonly authority: TokenAuthority,
    private readonly revocations: RevocationList,
    rootToken?: string,
  ) {
    if (rootToken) this.rootDigest = digest(rootToken);
  }

  async principalOf(req: FastifyRequest): Promise<Principal> {
    if (req.principal) return req.principal;
    const header = req.headers.authorization;
    const token = extractToken(header);
    let p: Principal;
    if (token !== undefined && this.rootDigest && timingSafeEqual(digest(token), this.rootDigest)) {
      p = rootPrincipal();
    } else {
      p = await authenticate(this.authority, this.revocations, header);
    }
    req.principal = p;
    return p;
  }

  /**
   * Resolves the cache and checks `perm` on it. `find` returns undefined for
   * an unknown cache; callers with no permission on the name cannot tell that
   * apart from a private cache.
   */
  async requireOnCache<C extends CacheRow>(
    req: FastifyRequest,
    name: string,
    perm: Permission,
    find: (name: string) => Promise<C | undefined>,
  ): Promise<{ cache: C; principal: Principal }> {
    // No cache can have an invalid name: refused before any lookup (and before it is quoted back).
    if (!isValidCacheName(name)) throw badRequest(invalidCacheNameMessage(name));
    const principal = await this.principalOf(req);
    const cache = await find(name);
    const publicPull = cache?.is_public === 1 && perm === 'pull';
    if (!publicPull && !principal.can(name, perm)) {
      if (principal.hasAnyOn(name) || (cache?.is_public === 1 && !principal.isAnonymous)) {
        if (!cache) throw notFound(`no such cache '${name}'`);
        throw forbidden(`this token does not grant '${perm}' on cache '${name}'`);
      }
      if (cache?.is_public === 1) throw unauthorized(`'${perm}' on cache '${name}' needs a token`);
      throw principal.isAnonymous
        ? unauthorized(`cache '${name}' needs a token with '${perm}'`)
        : forbidden(`this token does not grant '${perm}' on cache '${name}'`);
    }
    if (!cache) throw notFound(`no such cache '${name}'`);
    req.cache = cache;
    return { cache, principal };
  }

  /**
   * `?replace=true` on a push: replacing a path's NAR destroys what others pulled, so it needs
   * `delete` on the cache as well as `push`. False when not asked.
   */
  async replaceRequested(req: FastifyRequest, cacheName: string, find: (name: string) => Promise<CacheRow | undefined>): Promise<boolean> {
    const value = (req.query as Record<string, unknown> | undefined)?.replace;
    if (value === undefined || value === 'false') return false;
    if (value !== 'true') throw badRequest("replace must be 'true' or 'false'");
    await this.requireOnCache(req, cacheName, 'delete', find);
    return true;
  }

  /** A permission that does not concern an existing cache (create_cache, admin). */
  async requireOnName(req: FastifyRequest, name: string, perm: Permission): Promise<Principal> {
    const principal = await this.principalOf(req);
    if (!principal.can(name, perm)) {
      throw principal.isAnonymous
        ? unauthorized(`'${perm}' on '${name}' needs a token`)
        : forbidden(`this token does not grant '${perm}' on '${name}'`);
    }
    return principal;
  }

  async requireAdmin(req: FastifyRequest): Promise<Principal> {
    const principal = await this.principalOf(req);
    if (!principal.isAdmin) {
      throw principal.isAnonymous ? unauthorized('token management needs an admin token') : forbidden('this token is not an admin token');
    }
    return principal;
  }
}

/** GET /metrics when metrics.token is set: that token as Bearer, or an admin token. */
export async function requireMetricsScrape(access: AccessControl, req: FastifyRequest, scrapeToken: string): Promise<void> {
  const token = extractToken(req.headers.authorization);
  if (token !== undefined && timingSafeEqual(digest(token), digest(scrapeToken))) return;
  await access.requireAdmin(req);
}

function digest(s: string): Buffer {
  return createHash('sha256').update(s).digest();
}

/** The bootstrap root token (LOFT_ADMIN_TOKEN / auth.admin_token): everything on every cache. */
function rootPrincipal(): Principal {
  return new Principal({
    sub: 'root',
    jti: '',
    expiresAt: new Date(8.64e15),
    isAdmin: true,
    caches: new Map([['*', new Set<Permission>(ALL_PERMISSIONS)]]),
  });
}
