import type { FastifyInstance } from 'fastify';
import type { Services } from '../services.ts';
import { listIssuedTokens, recordIssuedToken, revokeToken } from '../../db/repos/tokens.ts';
import { badRequest } from '../../core/errors.ts';
import { ALL_PERMISSIONS, isValidCachePattern, LOFT_CLAIM, parseDuration, type IssuedToken, type LoftClaims, type Permission } from '../../token/index.ts';

interface CreateTokenBody {
  sub: string;
  validity: string;
  caches: Record<string, Permission[]>;
  admin?: boolean;
}

/** Token management (admin tokens only): issue, list and revoke. */
export function tokenRoutes(app: FastifyInstance, s: Services): void {
  app.post<{ Body: CreateTokenBody }>(
    '/_api/v1/tokens',
    {
      schema: {
        body: {
          type: 'object',
          required: ['sub', 'validity', 'caches'],
          additionalProperties: false,
          properties: {
            sub: { type: 'string', minLength: 1, maxLength: 256 },
            validity: { type: 'string', maxLength: 32 },
            caches: {
              type: 'object',
              maxProperties: 256,
              additionalProperties: { type: 'array', items: { type: 'string', enum: [...ALL_PERMISSIONS] } },
            },
            admin: { type: 'boolean' },
          },
        },
      },
    },
    async (req, reply) => {
      const admin = await s.access.requireAdmin(req);
      if (!s.tokens.canSign) throw badRequest('this server verifies tokens only (no signing key configured)');
      const bad = Object.keys(req.body.caches).find((p) => !isValidCachePattern(p));
      if (bad !== undefined) throw badRequest(`invalid cache pattern '${bad}'`);
      let issued: IssuedToken;
      try {
        issued = await s.tokens.issue({ ...req.body, validitySeconds: parseDuration(req.body.validity) });
      } catch (e) {
        // A malformed duration or one beyond auth.max_token_validity.
        if (e instanceof RangeError) throw badRequest(e.message);
        throw e;
      }
      await recordIssuedToken(s.kysely, {
        jti: issued.jti,
        sub: req.body.sub,
        claims: issued.claims,
        createdBy: admin.sub,
        expiresAt: issued.expiresAt.getTime(),
      });
      req.log.info({ sub: admin.sub, issued_sub: req.body.sub, jti: issued.jti }, 'token issued');
      return reply.code(201).send({ token: issued.token, jti: issued.jti, expires_at: issued.expiresAt.toISOString() });
    },
  );

  app.get('/_api/v1/tokens', async (req) => {
    await s.access.requireAdmin(req);
    const rows = await listIssuedTokens(s.kysely);
    return {
      tokens: rows.map((r) => {
        const claims = JSON.parse(r.claims) as Partial<LoftClaims>;
        return {
          jti: r.jti,
          sub: r.sub,
          claims,
          /** The Loft claim, unwrapped: what the token may do. */
          caches: claims[LOFT_CLAIM]?.caches ?? {},
          admin: claims[LOFT_CLAIM]?.admin === true,
          created_by: r.created_by,
          created_at: new Date(r.created_at).toISOString(),
          expires_at: new Date(r.expires_at).toISOString(),
          revoked_at: r.revoked_at === null ? null : new Date(r.revoked_at).toISOString(),
        };
      }),
    };
  });

  app.post<{ Params: { jti: string } }>('/_api/v1/tokens/:jti/revoke', async (req, reply) => {
    const admin = await s.access.requireAdmin(req);
    if (!/^[A-Za-z0-9._-]{1,128}$/.test(req.params.jti)) throw badRequest(`invalid token id '${req.params.jti}'`);
    await revokeToken(s.kysely, req.params.jti, null);
    req.log.info({ sub: admin.sub, jti: req.params.jti }, 'token revoked');
    return reply.code(204).send();
  });
}

