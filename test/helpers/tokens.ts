// Tokens for every kind of caller, the documented access model as one function, and a
// snapshot of the database and storage, shared by the access-control tests (test/integration/access/).
import assert from 'node:assert/strict';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import type { TestContext } from 'node:test';
import { SignJWT, type JWTPayload } from 'jose';
import { ALL_PERMISSIONS, LOFT_CLAIM, TokenAuthority, type Permission } from '../../src/token/index.ts';
import type { TestServer } from './server.ts';
import { listStorageObjects } from './storage-objects.ts';

/** Who calls. The first five present a token the server must reject whatever it claims. */
export type PrincipalKind =
  | 'anonymous'
  | 'wrong-signature'
  | 'expired'
  | 'not-yet-valid'
  | 'revoked'
  | 'other-cache'
  | 'lacking'
  | 'permitted'
  | 'root';

export const PRINCIPALS: PrincipalKind[] = [
  'anonymous',
  'wrong-signature',
  'expired',
  'not-yet-valid',
  'revoked',
  'other-cache',
  'lacking',
  'permitted',
  'root',
];

/** `absent`: no cache of that name exists. */
export type Visibility = 'public' | 'private' | 'absent';
export const VISIBILITIES: Visibility[] = ['public', 'private', 'absent'];

/**
 * What a route needs. `cache`: permissions on an existing cache (all of them);
 * `name`: a permission on a cache name that need not exist (create_cache);
 * `admin`: the global token-management flag.
 */
export type Need = { scope: 'cache' | 'name'; perms: Permission[] } | { scope: 'admin' };

const INVALID: ReadonlySet<PrincipalKind> = new Set(['wrong-signature', 'expired', 'not-yet-valid', 'revoked']);

/** What the server says about each invalid token (TokenError messages, docs/tokens.md). */
export const INVALID_MESSAGE: Partial<Record<PrincipalKind, RegExp>> = {
  'wrong-signature': /^invalid token signature$/,
  expired: /^token expired at \d{4}-/,
  'not-yet-valid': /^token is not valid before \d{4}-/,
  revoked: /^token has been revoked$/,
};

/**
 * The documented model (src/server/access.ts, docs/tokens.md), written once:
 * a token that does not verify is 401; public caches grant pull to anyone; a
 * caller holding no permission on the cache gets 401 when anonymous and 403
 * otherwise, whether the cache or path exists or not; a caller holding some
 * permission on the name learns the truth: 404 for an unknown cache, 403 for
 * a missing bit. Allowed requests answer `ok`, 404 for a missing resource,
 * and creating a cache that exists is a 409.
 */
export function expectedStatus(need: Need, who: PrincipalKind, visibility: Visibility, exists: boolean, ok: number): number {
  if (INVALID.has(who)) return 401;
  // `permitted` holds exactly what the route needs; root holds everything.
  let allowed = who === 'permitted' || who === 'root';
  let holdsSome = who === 'lacking';
  if (need.scope === 'admin') {
    if (!allowed) return who === 'anonymous' ? 401 : 403;
    return ok;
  }
  if (visibility === 'public') {
    holdsSome = true;
    if (need.scope === 'cache' && need.perms.every((p) => p === 'pull')) allowed = true;
  }
  if (!allowed) {
    if (who === 'anonymous') return 401;
    return need.scope === 'cache' && holdsSome && visibility === 'absent' ? 404 : 403;
  }
  if (need.scope === 'name') return exists ? 409 : ok;
  return exists ? ok : 404;
}

/** `Authorization: Basic` as Nix sends it from a netrc: the token is the password. */
export const basic = (token: string, user = 'x') => `Basic ${Buffer.from(`${user}:${token}`).toString('base64')}`;

const nowSeconds = () => Math.floor(Date.now() / 1000);

/** Signs any payload with HS256 and a base64 secret, bypassing TokenAuthority's checks. */
export function signHs256(payload: JWTPayload, secretB64: string): Promise<string> {
  return new SignJWT(payload).setProtectedHeader({ alg: 'HS256', typ: 'JWT' }).sign(Buffer.from(secretB64, 'base64'));
}

/** A complete, valid-looking payload granting `caches`; override any field. */
export function claims(caches: Record<string, Permission[]>, overrides: Record<string, unknown> = {}): JWTPayload {
  const now = nowSeconds();
  return { sub: 'test', jti: randomUUID(), iat: now, nbf: now, exp: now + 3600, [LOFT_CLAIM]: { caches }, ...overrides };
}

/** header.payload.signature by hand (e.g. `alg: none`). */
export const craftToken = (header: unknown, payload: unknown, signature = '') =>
  `${Buffer.from(JSON.stringify(header)).toString('base64url')}.${Buffer.from(JSON.stringify(payload)).toString('base64url')}.${signature}`;

/** POST /_api/v1/tokens with the root token; returns the token and its jti. */
export async function issueViaApi(
  server: TestServer,
  body: { sub?: string; validity?: string; caches: Record<string, Permission[]>; admin?: boolean },
): Promise<{ token: string; jti: string }> {
  const res = await server.fetch('/_api/v1/tokens', {
    method: 'POST',
    token: server.adminToken,
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ sub: 'test', validity: '1h', ...body }),
  });
  if (res.status !== 201) throw new Error(`issuing a token: ${res.status} ${await res.text()}`);
  return (await res.json()) as { token: string; jti: string };
}

export async function revokeViaApi(server: TestServer, jti: string): Promise<void> {
  const res = await server.fetch(`/_api/v1/tokens/${jti}/revoke`, { method: 'POST', token: server.adminToken });
  if (res.status !== 204) throw new Error(`revoking ${jti}: ${res.status} ${await res.text()}`);
}

/** Longer than the server's revocation cache TTL in tests (200 ms). */
export const waitForRevocation = () => new Promise((resolve) => setTimeout(resolve, 300));

const EVERYTHING = { '*': [...ALL_PERMISSIONS] };

/**
 * A token per principal kind and target. The invalid ones grant everything
 * (admin included), so their only defect is the one under test.
 */
export class Principals {
  private constructor(
    private readonly server: TestServer,
    private readonly invalid: Map<PrincipalKind, string>,
    private readonly other: string,
  ) {}

  static async create(server: TestServer): Promise<Principals> {
    const secret = server.config.auth.hs256Secret!;
    const otherKey = await TokenAuthority.create({ algorithm: 'HS256', hs256Secret: randomBytes(32).toString('base64') });
    const now = nowSeconds();
    const revoked = await issueViaApi(server, { caches: EVERYTHING, admin: true });
    await revokeViaApi(server, revoked.jti);
    const invalid = new Map<PrincipalKind, string>([
      ['wrong-signature', (await otherKey.issue({ sub: 'test', validitySeconds: 3600, caches: EVERYTHING, admin: true })).token],
      // Both beyond the 30 s clock tolerance.
      ['expired', await signHs256(claims(EVERYTHING, { iat: now - 7200, nbf: now - 7200, exp: now - 120 }), secret)],
      [
        'not-yet-valid',
        (await server.services.tokens.issue({ sub: 'test', validitySeconds: 3600, caches: EVERYTHING, admin: true, notBefore: new Date((now + 600) * 1000) })).token,
      ],
      ['revoked', revoked.token],
    ]);
    const other = (await server.services.tokens.issue({ sub: 'other', validitySeconds: 3600, caches: { 'elsewhere-*': [...ALL_PERMISSIONS] } })).token;
    await waitForRevocation();
    return new Principals(server, invalid, other);
  }

  /** The token `who` presents for a request on `cache` that needs `need` (undefined: anonymous). */
  async token(who: PrincipalKind, cache: string, need: Need): Promise<string | undefined> {
    if (who === 'anonymous') return undefined;
    if (who === 'root') return this.server.adminToken;
    if (who === 'other-cache') return this.other;
    const invalid = this.invalid.get(who);
    if (invalid) return invalid;
    const issue = (caches: Record<string, Permission[]>, admin = false) =>
      this.server.services.tokens.issue({ sub: who, validitySeconds: 3600, caches, admin }).then((t) => t.token);
    if (need.scope === 'admin') return who === 'permitted' ? issue({}, true) : issue(EVERYTHING);
    // `lacking` holds every permission on the cache except the last one the route needs.
    const missing = need.perms[need.perms.length - 1];
    const perms = who === 'permitted' ? need.perms : ALL_PERMISSIONS.filter((p) => p !== missing);
    return issue({ [cache]: [...perms] });
  }
}

const TABLES = ['caches', 'nars', 'chunks', 'nar_chunks', 'objects', 'nar_uploads', 'chunk_stagings', 'issued_tokens', 'revoked_tokens'] as const;

/**
 * A digest of every table and of every storage object, to compare before and after a refused
 * request. `last_accessed_at` is left out: a successful NAR download updates it in the background,
 * and that may land during a later request.
 */
export async function snapshotState(server: TestServer): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const digest = (lines: string[]) => createHash('sha256').update(lines.join('\n')).digest('hex').slice(0, 16);
  for (const table of TABLES) {
    const rows = (await server.services.kysely.selectFrom(table).selectAll().execute()) as Record<string, unknown>[];
    const lines = rows.map((r) => JSON.stringify(Object.entries(r).filter(([k]) => k !== 'last_accessed_at'))).sort();
    out[table] = `${rows.length} rows ${digest(lines)}`;
  }
  const objects = await listStorageObjects(server.config.storage);
  out.storage = `${objects.length} objects ${digest(objects)}`;
  return out;
}

export interface HttpRequest {
  method: string;
  path: string;
  headers?: Record<string, string>;
  body?: string | Buffer<ArrayBuffer>;
}

/** One row of the access matrix. */
export interface RouteCase {
  name: string;
  need: Need;
  /** Status of an allowed request on an existing resource. */
  ok: number;
  /** Default: all three. Token management ignores caches, so it runs once. */
  visibilities?: Visibility[];
  /** Whether the resource exists when the cache does (false: an absent path or NAR). Default true. */
  exists?: boolean;
  /** The cache name for a visibility (default: the shared fixtures). */
  target?(v: Visibility): string;
  request(cache: string): HttpRequest | Promise<HttpRequest>;
  /** Runs before each request expected to succeed, to restore the target (e.g. recreate a destroyed cache). */
  reset?(cache: string, v: Visibility): Promise<void>;
  /** Routes of one group must answer a refused caller identically on a private cache (present vs absent path). */
  leakGroup?: string;
}

/**
 * Runs every route × principal × visibility against one server, one subtest
 * per route: asserts the status from expectedStatus, the error message of
 * invalid tokens, that a refused request changed nothing in the database, and
 * that a private cache answers a refused caller the same for present and
 * absent resources.
 */
export async function runMatrix(
  t: TestContext,
  server: TestServer,
  principals: Principals,
  caches: Record<Visibility, string>,
  routes: RouteCase[],
): Promise<void> {
  const leaks = new Map<string, Map<string, string>>();
  let requests = 0;
  for (const route of routes) {
    await t.test(route.name, async () => {
      for (const v of route.visibilities ?? VISIBILITIES) {
        const cache = route.target?.(v) ?? caches[v];
        const exists = v !== 'absent' && (route.exists ?? true);
        for (const who of PRINCIPALS) {
          const label = `${route.name} × ${who} × ${v} cache`;
          const expected = expectedStatus(route.need, who, v, exists, route.ok);
          const refused = expected === 401 || expected === 403;
          if (!refused && route.reset) await route.reset(cache, v);
          const req = await route.request(cache);
          const token = await principals.token(who, cache, route.need);
          const headers: Record<string, string> = { ...req.headers };
          if (token !== undefined) headers.authorization = `Bearer ${token}`;
          const before = refused ? await snapshotState(server) : undefined;
          const res = await server.fetch(req.path, { method: req.method, headers, body: req.body });
          const text = await res.text();
          requests++;
          assert.equal(res.status, expected, `${label}: expected ${expected}, got ${res.status} ${text.slice(0, 300)}`);
          if (!refused) continue;
          assert.deepEqual(await snapshotState(server), before, `${label}: a refused request changed the database or storage`);
          if (req.method !== 'HEAD') {
            const body = JSON.parse(text) as { error: string; message: string };
            assert.equal(body.error, expected === 401 ? 'unauthorized' : 'forbidden', label);
            const message = INVALID_MESSAGE[who];
            if (message) assert.match(body.message, message, label);
          }
          if (route.leakGroup && v === 'private') {
            const key = `${route.leakGroup} × ${who}`;
            const seen = leaks.get(key) ?? new Map<string, string>();
            seen.set(route.name, `${res.status} ${text}`);
            leaks.set(key, seen);
          }
        }
      }
    });
  }
  t.diagnostic(`${requests} requests`);
  await t.test('a private cache answers refused callers the same for present and absent resources', () => {
    assert.equal(leaks.size > 0, routes.some((r) => r.leakGroup !== undefined));
    for (const [key, answers] of leaks) {
      assert.equal(new Set(answers.values()).size, 1, `${key}: ${JSON.stringify(Object.fromEntries(answers))}`);
    }
  });
}
