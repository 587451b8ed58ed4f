import type { FastifyInstance } from 'fastify';
import type { Services } from '../services.ts';

const escape = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

/** A short page saying what this server is and how to use its public caches. */
export function landingRoutes(app: FastifyInstance, s: Services): void {
  app.get('/', async (req, reply) => {
    const base = s.config.publicUrl ?? `${req.protocol}://${req.host}`;
    const caches = (await s.caches.list()).filter((c) => c.is_public === 1);
    const rows = caches
      .map((c) => `<tr><td>${escape(c.name)}</td><td><code>${escape(`${base}/${c.name}`)}</code></td><td><code>${escape(c.public_key)}</code></td></tr>`)
      .join('\n');
    return reply.type('text/html; charset=utf-8').send(`<!doctype html>
<html><head><meta charset="utf-8"><title>Loft binary cache</title>
<style>body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem}code{font-size:.9em}td{padding:.2rem .6rem}</style></head>
<body><h1>Loft</h1><p>A Nix binary cache. Use a cache with:</p>
<pre>nix build --substituters URL --trusted-public-keys KEY …</pre>
<h2>Public caches</h2>
${caches.length ? `<table><tr><th>cache</th><th>substituter URL</th><th>public key</th></tr>${rows}</table>` : '<p>No public cache.</p>'}
<p><a href="/dashboard">Dashboard</a> · health: <a href="/v1/healthz">/v1/healthz</a></p></body></html>`);
  });
}
