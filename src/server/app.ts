import Fastify, { type FastifyInstance } from 'fastify';
import type { Services } from './services.ts';
import { errorHandler } from './errors.ts';
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
import { pinRoutes } from './routes/pins.ts';

export interface AppOptions {
  logger?: boolean | { level: string };
}

/** Builds the HTTP application; never listens (main.ts and tests do). */
export async function buildApp(s: Services, opts: AppOptions = {}): Promise<FastifyInstance> {
  const app = Fastify({
    logger: opts.logger ?? { level: s.config.logLevel },
    bodyLimit: s.config.maxMetadataBytes,
    routerOptions: { maxParamLength: 256 },
    // Nix opens ~25 parallel connections and keeps them alive.
    keepAliveTimeout: 65_000,
    forceCloseConnections: 'idle',
    return503OnClosing: true,
  });
  // Uploads (NARs, chunks) are streamed by their handlers: leave non-JSON bodies unread.
  app.addContentTypeParser('*', (_req, _payload, done) => done(null, undefined));
  app.setErrorHandler(errorHandler);
  app.setNotFoundHandler((req, reply) => {
    void reply.code(404).send({ error: 'not_found', message: `no route for ${req.method} ${req.url}` });
  });

  s.metrics.install(app);
  // Every route, in one list.
  landingRoutes(app, s);
  dashboardRoutes(app);
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
