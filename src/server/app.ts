import Fastify, { LogController, type FastifyInstance } from 'fastify';
import type { Services } from './services.ts';
import { errorHandler } from './errors.ts';
import { pacedBody } from './body.ts';
import { limitPushConcurrency } from './push-limiter.ts';
import { unauthorized } from '../core/errors.ts';
import { binaryCacheRoutes } from './routes/binary-cache.ts';
import { cacheRoutes } from './routes/caches.ts';
import { pushApiRoutes } from './routes/push-api.ts';
import { healthRoutes } from './routes/health.ts';
import { landingRoutes } from './routes/landing.ts';
import { tokenRoutes } from './routes/tokens.ts';
import { adminRoutes } from './routes/admin.ts';
import { pathRoutes } from './routes/paths.ts';
import { dashboardRoutes } from './routes/dashboard.ts';
import { chunkRoutes } from './routes/chunks.ts';
import { statsRoutes } from './routes/stats.ts';
import { dashboardApiRoutes } from './routes/dashboard-api.ts';
import { installObservation } from './observe.ts';
import { requireMetricsScrape } from './access.ts';

/**
 * Before any body is read: API requests with a body need a valid token (every one of them needs
 * a permission anonymous callers never have; the handler then checks the exact one), and JSON
 * bodies, which fastify parses before the handler runs, are held to the body pace.
 */
function guardBodies(app: FastifyInstance, s: Services): void {
  app.addHook('preParsing', async (req, _reply, payload) => {
    const hasBody = Number(req.headers['content-length'] ?? 0) > 0 || req.headers['transfer-encoding'] !== undefined;
    if (!hasBody) return payload;
    if (req.url.startsWith('/_api/') && (await s.access.principalOf(req)).isAnonymous) {
      throw unauthorized(`${req.method} ${req.routeOptions.url ?? req.url.split('?')[0]} needs a token`);
    }
    return req.headers['content-type']?.startsWith('application/json') ? pacedBody(req, payload, s.config) : payload;
  });
}
import { pinRoutes } from './routes/pins.ts';

export interface AppOptions {
  logger?: boolean | { level: string };
}

/** Builds the HTTP application; never listens (main.ts and tests do). */
export async function buildApp(s: Services, opts: AppOptions = {}): Promise<FastifyInstance> {
  const app = Fastify({
    logger: opts.logger ?? { level: s.config.logLevel },
    // installObservation writes the one access line per request instead of fastify's two.
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: s.config.maxMetadataBytes,
    routerOptions: { maxParamLength: 256 },
    // Nix opens ~25 parallel connections and keeps them alive.
    keepAliveTimeout: 65_000,
    forceCloseConnections: 'idle',
    return503OnClosing: true,
    requestTimeout: s.config.requestTimeoutMs,
    // Node enforces headersTimeout/requestTimeout on this tick (default 30 s, too coarse for the former).
    http: { connectionsCheckingInterval: 1000 },
  });
  app.server.headersTimeout = s.config.headersTimeoutMs;
  guardBodies(app, s);
  limitPushConcurrency(app, s);
  // Uploads (NARs, chunks) are streamed by their handlers: leave non-JSON bodies unread.
  app.addContentTypeParser('*', (_req, _payload, done) => done(null, undefined));
  app.setErrorHandler(errorHandler);
  app.setNotFoundHandler((req, reply) => {
    void reply.code(404).send({ error: 'not_found', message: `no route for ${req.method} ${req.url}` });
  });

  const scrapeToken = s.config.metrics.token;
  s.metrics.install(app, scrapeToken ? (req) => requireMetricsScrape(s.access, req, scrapeToken) : undefined);
  installObservation(app, s);
  s.usage.start((err) => app.log.warn({ err }, 'writing the usage history failed; its counts are dropped'));
  // Every route, in one list.
  landingRoutes(app, s);
  dashboardRoutes(app);
  dashboardApiRoutes(app, s);
  healthRoutes(app, s);
  cacheRoutes(app, s);
  pushApiRoutes(app, s);
  chunkRoutes(app, s);
  statsRoutes(app, s);
  tokenRoutes(app, s);
  adminRoutes(app, s);
  pathRoutes(app, s);
  pinRoutes(app, s);
  binaryCacheRoutes(app, s);
  return app;
}
