import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance, FastifyReply } from 'fastify';
import { notFound } from '../../core/errors.ts';

/** The page and its scripts and styles (copied next to the compiled code by `npm run build`). */
const ASSET_DIR = fileURLToPath(new URL('../dashboard/assets/', import.meta.url));
const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
};
/** Scripts and styles from this server only, no inline code, no framing: data can never run as code. */
const CSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'";

function loadAssets(): Map<string, { type: string; body: Buffer }> {
  const assets = new Map<string, { type: string; body: Buffer }>();
  for (const name of readdirSync(ASSET_DIR)) {
    const type = TYPES[path.extname(name)];
    if (type) assets.set(name, { type, body: readFileSync(path.join(ASSET_DIR, name)) });
  }
  if (!assets.has('index.html')) throw new Error(`dashboard assets missing in ${ASSET_DIR} (run npm run build)`);
  return assets;
}

/**
 * The web dashboard: one HTML shell for /dashboard, /dashboard/{cache} and /dashboard/{cache}/{hash};
 * the script reads the JSON API with the viewer's token, so the pages grant nothing by themselves.
 */
export function dashboardRoutes(app: FastifyInstance): void {
  const assets = loadAssets();
  const send = (reply: FastifyReply, name: string) => {
    const a = assets.get(name);
    if (!a) throw notFound(`no dashboard asset '${name}'`);
    return reply
      .type(a.type)
      .header('cache-control', 'no-cache')
      .header('x-content-type-options', 'nosniff')
      .header('content-security-policy', CSP)
      .header('referrer-policy', 'no-referrer')
      .send(a.body);
  };
  const page = async (_req: unknown, reply: FastifyReply) => send(reply, 'index.html');
  app.get('/dashboard', page);
  app.get('/dashboard/:cache', page);
  app.get('/dashboard/:cache/:hash', page);
  app.get<{ Params: { file: string } }>('/_dashboard/:file', async (req, reply) => send(reply, req.params.file));
}
