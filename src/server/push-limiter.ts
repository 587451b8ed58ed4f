import type { FastifyInstance } from 'fastify';
import { TooManyRequestsError } from '../core/errors.ts';
import type { Services } from './services.ts';

/** The routes that ingest, store or verify NAR data: the ones a token's concurrency is counted on. */
const PUSH_ROUTES = new Set(['PUT /:cache/nar/:file', 'PUT /_api/v1/upload-path', 'POST /_api/v1/chunks', 'POST /_api/v1/nar']);

/** How long a refused pusher is told to wait. */
const RETRY_AFTER_SECONDS = 1;

/**
 * At most `limits.max_concurrent_pushes_per_token` pushes per token in flight on this replica;
 * more are answered 429 with Retry-After (Nix and the Loft client retry those), so one token
 * cannot take every worker and connection. Anonymous requests are refused by the routes anyway.
 */
export function limitPushConcurrency(app: FastifyInstance, s: Services): void {
  const max = s.config.limits.maxConcurrentPushesPerToken;
  if (max === 0) return;
  const inFlight = new Map<string, number>();
  app.addHook('preHandler', async (req, reply) => {
    if (!PUSH_ROUTES.has(`${req.method} ${req.routeOptions.url}`)) return;
    const principal = await s.access.principalOf(req);
    if (principal.isAnonymous) return;
    // The root token has no jti; every other token is told apart by its id.
    const key = principal.jti || principal.sub;
    const n = inFlight.get(key) ?? 0;
    if (n >= max) {
      throw new TooManyRequestsError(`this token already has ${n} pushes in flight (limits.max_concurrent_pushes_per_token); retry shortly`, RETRY_AFTER_SECONDS);
    }
    inFlight.set(key, n + 1);
    let released = false;
    reply.raw.once('close', () => {
      if (released) return;
      released = true;
      const left = (inFlight.get(key) ?? 1) - 1;
      if (left === 0) inFlight.delete(key);
      else inFlight.set(key, left);
    });
  });
}
