import { buildApp } from './app.ts';
import { loadConfig, type ServerConfig } from './config.ts';
import { createServices } from './services.ts';
import { ensureDataDir, ensureTokenSecret, firstStart } from './bootstrap.ts';
import { migrateToLatest } from '../db/migrate.ts';
import { openDatabase } from '../db/dialect.ts';
import { startJobs } from './jobs.ts';
import { applyDeclaredCaches } from './declared-caches.ts';
import { useEnvProxyForFetch } from '../upstream/proxy.ts';

export type ServeMode = 'monolithic' | 'api' | 'worker' | 'migrate' | 'check-config';

export interface ServeOptions {
  config?: string;
  listen?: string;
  mode?: ServeMode;
}

/** `loft serve`: the process entry; the only place that listens and handles signals. */
export async function serve(opts: ServeOptions): Promise<void> {
  let cfg = await loadConfig(opts.config, opts.listen ? { ...process.env, LOFT_LISTEN: opts.listen } : process.env);
  const mode = opts.mode ?? 'monolithic';
  if (mode === 'check-config') {
    console.log(`config OK (database ${redact(cfg.database.url)}, storage ${cfg.storage.type})`);
    return;
  }
  if (mode === 'migrate') {
    const db = openDatabase(cfg.database);
    try {
      const applied = await migrateToLatest(db);
      console.log(applied.length ? `applied migrations: ${applied.join(', ')}` : 'database schema is up to date');
    } finally {
      await db.close();
    }
    return;
  }
  await ensureDataDir(cfg);
  cfg = await ensureTokenSecret(cfg);
  // Before the services start: a proxy setting Loft cannot use stops it here.
  const proxies = useEnvProxyForFetch();
  const services = await createServices(cfg);
  let report: Awaited<ReturnType<typeof firstStart>>;
  try {
    // Safe with several replicas starting at once: the migrator holds a lock.
    await migrateToLatest(services.db);
    report = mode === 'monolithic' ? await firstStart(services) : {};
    await applyDeclaredCaches(services);
  } catch (e) {
    // The worker threads and the pool must end before the process does.
    await services.close();
    throw e;
  }
  const app = await buildApp(services);
  if (proxies) app.log.info(proxies.note);
  const jobs = mode === 'api' ? undefined : startJobs(services, app.log);
  if (mode !== 'worker') {
    await app.listen({ host: cfg.listen.host, port: cfg.listen.port });
    await printBanner(cfg, services, report, app.server.address());
  } else {
    app.log.info('worker started: running background jobs only');
  }

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    app.log.info({ signal }, 'shutting down: finishing requests in flight');
    await jobs?.stop();
    // Keep-alive connections whose last response ends during close() would otherwise hold the process for keepAliveTimeout.
    const sweep = setInterval(() => app.server.closeIdleConnections(), 250);
    await app.close();
    clearInterval(sweep);
    await services.close();
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
}

function redact(url: string): string {
  return url.replace(/\/\/([^:@/]+):[^@/]*@/, '//$1:***@');
}

async function printBanner(
  cfg: ServerConfig,
  s: Awaited<ReturnType<typeof createServices>>,
  report: Awaited<ReturnType<typeof firstStart>>,
  address: ReturnType<import('node:net').Server['address']>,
): Promise<void> {
  const port = typeof address === 'object' && address ? address.port : cfg.listen.port;
  const host = cfg.listen.host === '0.0.0.0' || cfg.listen.host === '::' ? 'localhost' : cfg.listen.host;
  const base = cfg.publicUrl ?? `http://${host}:${port}`;
  const lines = [`Loft is listening on ${base} (database: ${redact(cfg.database.url)}, storage: ${cfg.storage.type})`];
  for (const c of await s.caches.list()) {
    lines.push(`  cache ${c.name}${c.is_public ? ' (public)' : ' (private)'}: ${base}/${c.name}`);
    lines.push(`    public key: ${c.public_key}`);
  }
  if (report.adminToken) lines.push(`  admin token (also saved in ${report.adminTokenFile}):`, `    ${report.adminToken}`);
  else if (cfg.auth.adminToken) lines.push('  admin token: the one set in LOFT_ADMIN_TOKEN / auth.admin_token');
  else if (report.adminTokenFile) lines.push(`  admin token: in ${report.adminTokenFile}`);
  console.log(lines.join('\n'));
}
