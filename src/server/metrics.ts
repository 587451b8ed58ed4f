import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { StorageStats } from '../db/repos/stats.ts';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { UpstreamObserver } from '../upstream/binary-cache-client.ts';

export interface MetricResources {
  dbPool?: () => { total: number; idle: number; waiting: number };
  workers?: () => { queued: number; busy: number };
}

/** Prometheus metrics of one process. Routes are labelled by pattern, caches by name; store paths never appear. */
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
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 30],
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
    help: 'Garbage-collection passes run by this process, by trigger (timer, api) and result (ok, failed)',
    labelNames: ['trigger', 'result'] as const,
    registers: [this.registry],
  });
  readonly gcBytesFreed = new Counter({
    name: 'loft_gc_freed_bytes_total',
    help: 'Stored bytes of the chunks garbage collection deleted (returned to the storage as their packs are compacted)',
    registers: [this.registry],
  });
  readonly gcPassDuration = new Histogram({
    name: 'loft_gc_pass_duration_seconds',
    help: 'Duration of garbage-collection passes',
    buckets: [0.1, 1, 10, 60, 300, 900, 3600],
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

  // Per cache (the `cache` label is the cache name; docs/deployment.md says how to keep /metrics private).
  readonly narinfoRequests = new Counter({
    name: 'loft_narinfo_requests_total',
    help: 'narinfo lookups per cache: result="hit" (200) or "miss" (404)',
    labelNames: ['cache', 'result'] as const,
    registers: [this.registry],
  });
  readonly cacheBytesServed = new Counter({
    name: 'loft_cache_nar_bytes_served_total',
    help: 'NAR bytes sent to clients per cache (bytes served from the bucket by redirect not included)',
    labelNames: ['cache'] as const,
    registers: [this.registry],
  });
  readonly pushRequests = new Counter({
    name: 'loft_push_requests_total',
    help: 'Requests that publish a store path, per cache: result="ok" or "failed" (refused or errored)',
    labelNames: ['cache', 'result'] as const,
    registers: [this.registry],
  });
  readonly pushBytesReceived = new Counter({
    name: 'loft_push_bytes_received_total',
    help: 'Request body bytes received by push requests per cache (NARs, chunks)',
    labelNames: ['cache'] as const,
    registers: [this.registry],
  });
  readonly storedBytes = new Gauge({
    name: 'loft_cache_stored_bytes',
    help: 'Bytes the deduplicated, compressed chunks of a cache take in storage (last measured)',
    labelNames: ['cache'] as const,
    registers: [this.registry],
  });
  readonly narBytes = new Gauge({
    name: 'loft_cache_nar_bytes',
    help: 'Logical NAR bytes of the paths of a cache (last measured)',
    labelNames: ['cache'] as const,
    registers: [this.registry],
  });
  readonly cachePaths = new Gauge({
    name: 'loft_cache_paths',
    help: 'Store paths in a cache (last measured)',
    labelNames: ['cache'] as const,
    registers: [this.registry],
  });
  readonly dedupRatio = new Gauge({
    name: 'loft_cache_dedup_ratio',
    help: 'Share of the logical NAR bytes of a cache that dedup and compression save: 1 - stored/NAR bytes',
    labelNames: ['cache'] as const,
    registers: [this.registry],
  });
  /** Pools read at scrape time: the PostgreSQL connection pool (none with SQLite) and the chunk workers. */
  constructor(resources: MetricResources = {}) {
    collectDefaultMetrics({ register: this.registry, prefix: 'loft_' });
    const { dbPool, workers } = resources;
    new Gauge({
      name: 'loft_db_pool_connections',
      help: 'PostgreSQL pool connections: state="in_use", "idle", or "waiting" (requests queued for one)',
      labelNames: ['state'] as const,
      registers: [this.registry],
      collect() {
        const p = dbPool?.() ?? { total: 0, idle: 0, waiting: 0 };
        this.set({ state: 'in_use' }, p.total - p.idle);
        this.set({ state: 'idle' }, p.idle);
        this.set({ state: 'waiting' }, p.waiting);
      },
    });
    new Gauge({
      name: 'loft_worker_pool_tasks',
      help: 'Chunk worker pool (hashing, zstd) tasks: state="queued" (waiting for a worker) or "running"',
      labelNames: ['state'] as const,
      registers: [this.registry],
      collect() {
        const w = workers?.() ?? { queued: 0, busy: 0 };
        this.set({ state: 'queued' }, w.queued);
        this.set({ state: 'running' }, w.busy);
      },
    });
  }

  cacheStorage(cache: string, s: StorageStats): void {
    this.storedBytes.set({ cache }, s.stored_bytes);
    this.narBytes.set({ cache }, s.nar_bytes);
    this.cachePaths.set({ cache }, s.paths);
    this.dedupRatio.set({ cache }, s.nar_bytes > 0 ? Math.max(0, 1 - s.stored_bytes / s.nar_bytes) : 0);
  }

  /** Records every response, and serves GET /metrics. */
  install(app: FastifyInstance, authorize?: (req: FastifyRequest) => Promise<void>): void {
    app.addHook('onResponse', async (req, reply) => {
      const route = req.routeOptions.url ?? 'unmatched';
      this.requests.inc({ method: req.method, route, status: String(reply.statusCode) });
      this.duration.observe({ method: req.method, route }, reply.elapsedTime / 1000);
    });
    app.get('/metrics', async (req, reply) => {
      await authorize?.(req);
      return reply.type(this.registry.contentType).send(await this.registry.metrics());
    });
  }
}
