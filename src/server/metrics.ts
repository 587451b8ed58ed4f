import type { FastifyInstance } from 'fastify';
import { Counter, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

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
  readonly gcPasses = new Counter({
    name: 'loft_gc_passes_total',
    help: 'Garbage-collection passes run, by trigger (timer, api)',
    labelNames: ['trigger'] as const,
    registers: [this.registry],
  });
  readonly gcBytesFreed = new Counter({
    name: 'loft_gc_freed_bytes_total',
    help: 'Stored bytes returned to the storage by garbage collection',
    registers: [this.registry],
  });
  readonly gcPassDuration = new Histogram({
    name: 'loft_gc_pass_duration_seconds',
    help: 'Duration of garbage-collection passes',
    buckets: [0.1, 1, 10, 60, 300, 900, 3600],
    registers: [this.registry],
  });

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
