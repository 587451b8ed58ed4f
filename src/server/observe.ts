import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Services } from './services.ts';

declare module 'fastify' {
  interface FastifyRequest {
    /** Set when a publish request answered 400 as a protocol step (chunks still missing), not a failure. */
    pushIncomplete?: boolean;
  }
}

/** Requests that make a store path visible: their outcome is the push success rate. */
const PUBLISH_ROUTES = new Set(['PUT /:cache/:file', 'PUT /_api/v1/upload-path', 'POST /_api/v1/nar']);
/** Requests whose bodies carry pushed data (NARs, chunks), and the push method they belong to (as pathPushed names it). */
const UPLOAD_ROUTES = new Map([
  ['PUT /:cache/nar/:file', 'nix-copy'],
  ['PUT /_api/v1/upload-path', 'upload-path'],
  ['POST /_api/v1/chunks', 'chunks'],
] as const);

/**
 * One onResponse hook: the single access-log line of each request (fastify's own request
 * logging is off), and the per-cache counters of the metrics and the dashboard's history.
 */
export function installObservation(app: FastifyInstance, s: Services): void {
  const level = s.config.accessLog as 'info';
  app.addHook('onResponse', async (req, reply) => {
    const route = req.routeOptions.url ?? 'unmatched';
    countUsage(s, req, reply, route);
    if (s.config.accessLog === 'off') return;
    const length = Number(reply.getHeader('content-length'));
    req.log[level](
      {
        method: req.method,
        route,
        // The path only: no query string, and headers (Authorization) are never logged.
        path: req.url.split('?', 1)[0],
        status: reply.statusCode,
        bytes: Number.isFinite(length) ? length : null,
        duration_ms: Math.round(reply.elapsedTime * 10) / 10,
        sub: req.principal?.sub ?? null,
      },
      'request',
    );
  });
}

function countUsage(s: Services, req: FastifyRequest, reply: FastifyReply, route: string): void {
  const cache = req.cache;
  if (!cache) return;
  const status = reply.statusCode;
  const key = `${req.method} ${route}`;
  const file = (req.params as { file?: string }).file ?? '';
  if (route === '/:cache/:file' && req.method === 'GET' && file.endsWith('.narinfo') && (status === 200 || status === 404)) {
    const hit = status === 200;
    s.usage.count(cache.id, hit ? 'narinfo_hits' : 'narinfo_misses');
    s.metrics.narinfoRequests.inc({ cache: cache.name, result: hit ? 'hit' : 'miss' });
  } else if (key === 'GET /:cache/nar/:file' && (status === 200 || status === 302)) {
    const bytes = status === 200 ? Number(reply.getHeader('content-length') ?? 0) : 0;
    s.usage.count(cache.id, 'nar_downloads');
    s.usage.count(cache.id, 'bytes_served', bytes);
    s.metrics.cacheBytesServed.inc({ cache: cache.name }, bytes);
  }
  const via = UPLOAD_ROUTES.get(key as never);
  if (via) {
    const bytes = Number(req.headers['content-length'] ?? 0) || 0;
    s.usage.count(cache.id, 'bytes_received', bytes);
    s.metrics.pushBytesReceived.inc({ cache: cache.name }, bytes);
    if (req.principal) s.usage.pushActivity(cache, req.principal.sub, via, { bytes });
  }
  if (PUBLISH_ROUTES.has(key) && !(key === 'PUT /:cache/:file' && !file.endsWith('.narinfo'))) {
    if (status >= 400 && req.pushIncomplete) return;
    const ok = status < 400;
    s.usage.count(cache.id, ok ? 'pushes_ok' : 'pushes_failed');
    s.metrics.pushRequests.inc({ cache: cache.name, result: ok ? 'ok' : 'failed' });
  }
}
