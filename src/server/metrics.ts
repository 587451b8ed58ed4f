import type { FastifyInstance } from 'fastify';
import { Counter, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { UpstreamObserver } from '../upstream/binary-cache-client.ts';

/** Prometheus metrics of one process. Labels use route patterns, never cache names or paths. */
export class Metrics {
  readonly registry = new Registry();
  readonly requests = new Counter({
    name: 'loft_http_requests_total',
    help: 'HTTP requests by method, route pattern and status',
    labelNames: ['method', 'route', 'status'] as const,
    registers: [this.registry],
  });
  readonly duration = new Histogram({
    name: 'loft_http_request_duration_seconds',
    help: 'HTTP request duration by route pattern',
    labelNames: ['method', 'route'] as const,
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5, 30],
    registers: [this.registry],
  });
  readonly bytesServed = new Counter({
    name: 'loft_nar_bytes_served_total',
    help: 'NAR bytes sent to clients',
    registers: [this.registry],
  });
  readonly pathsPushed = new Counter({
    name: 'loft_paths_pushed_total',
    help: 'Store paths made visible by pushes',
    labelNames: ['via'] as const,
    registers: [this.registry],
  });
  readonly gcDeleted = new Counter({
    name: 'loft_gc_deleted_total',
    help: 'Rows and blobs removed by garbage collection',
    labelNames: ['kind'] as const,
    registers: [this.registry],
  });

  // Pull-through, per configured upstream (URL or cache:NAME: a label bounded by configuration).
  readonly upstreamNarInfos = new Counter({
    name: 'loft_upstream_narinfo_requests_total',
    help: 'narinfo lookups sent to an upstream, by result (hit, miss, error)',
    labelNames: ['upstream', 'result'] as const,
    registers: [this.registry],
  });
  readonly upstreamBytes = new Counter({
    name: 'loft_upstream_nar_bytes_total',
    help: 'NAR file bytes fetched from an upstream and stored',
    labelNames: ['upstream'] as const,
    registers: [this.registry],
  });
  readonly upstreamFetchSeconds = new Histogram({
    name: 'loft_upstream_fetch_duration_seconds',
    help: 'Time of an upstream request: a narinfo lookup, or a NAR download with its ingest',
    labelNames: ['upstream', 'kind'] as const,
    buckets: [0.005, 0.025, 0.1, 0.25, 1, 2.5, 10, 30, 120, 600],
    registers: [this.registry],
  });
  readonly upstreamErrors = new Counter({
    name: 'loft_upstream_errors_total',
    help: 'Upstream failures by reason (timeout, unreachable, server_error, denied, bad_response, verification)',
    labelNames: ['upstream', 'reason'] as const,
    registers: [this.registry],
  });

  readonly upstreamObserver: UpstreamObserver = {
    narInfo: (upstream, result, seconds) => {
      this.upstreamNarInfos.inc({ upstream, result });
      this.upstreamFetchSeconds.observe({ upstream, kind: 'narinfo' }, seconds);
    },
    narFetched: (upstream, bytes, seconds) => {
      this.upstreamBytes.inc({ upstream }, bytes);
      this.upstreamFetchSeconds.observe({ upstream, kind: 'nar' }, seconds);
    },
    error: (upstream, reason) => this.upstreamErrors.inc({ upstream, reason }),
  };

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: 'loft_' });
  }

  /** Records every response, and serves GET /metrics. */
  install(app: FastifyInstance): void {
    app.addHook('onResponse', async (req, reply) => {
      const route = req.routeOptions.url ?? 'unmatched';
      this.requests.inc({ method: req.method, route, status: String(reply.statusCode) });
      this.duration.observe({ method: req.method, route }, reply.elapsedTime / 1000);
    });
    app.get('/metrics', async (_req, reply) => {
      return reply.type(this.registry.contentType).send(await this.registry.metrics());
    });
  }
}
