import type { FastifyInstance } from 'fastify';

/**
 * A small single-page dashboard: caches, their keys and URLs, logical vs
 * stored bytes, and server health. It only calls the JSON API with the token
 * the user pastes (kept in the browser's localStorage), so it grants nothing
 * by itself.
 */
const PAGE = `<!doctype html>
<html><head><meta charset="utf-8"><title>Loft dashboard</title>
<style>
body{font-family:system-ui,sans-serif;max-width:72rem;margin:1.5rem auto;padding:0 1rem;color:#222}
table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:.35rem .6rem;border-bottom:1px solid #ddd;vertical-align:top}
code{font-size:.85em;word-break:break-all}.ok{color:#070}.bad{color:#b00}.num{text-align:right;font-variant-numeric:tabular-nums}
input{width:32rem;max-width:100%}
</style></head>
<body>
<h1>Loft</h1>
<p id="health">checking health…</p>
<p><label>Token (optional, for private caches): <input id="token" type="password" placeholder="paste a token"></label>
<button id="save">Use</button></p>
<table><thead><tr><th>cache</th><th>visibility</th><th>substituter URL / public key</th>
<th class="num">paths</th><th class="num">NAR bytes</th><th class="num">stored bytes</th><th class="num">saved</th></tr></thead>
<tbody id="caches"><tr><td colspan="7">loading…</td></tr></tbody></table>
<script>
const $ = (id) => document.getElementById(id);
const fmt = (n) => n == null ? '–' : n >= 1e9 ? (n / 1e9).toFixed(2) + ' GB' : n >= 1e6 ? (n / 1e6).toFixed(1) + ' MB' : n >= 1e3 ? (n / 1e3).toFixed(1) + ' kB' : n + ' B';
const esc = (s) => String(s).replace(/[&<>"']/g, (c) => '&#' + c.charCodeAt(0) + ';');
$('token').value = localStorage.getItem('loft-token') || '';
$('save').onclick = () => { localStorage.setItem('loft-token', $('token').value.trim()); load(); };
async function api(path) {
  const token = localStorage.getItem('loft-token');
  const res = await fetch(path, { headers: token ? { authorization: 'Bearer ' + token } : {} });
  const body = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error(body.message || res.status);
  return body;
}
async function load() {
  fetch('/v1/healthz').then((r) => r.json()).then((h) => {
    $('health').innerHTML = h.status === 'ok' ? '<span class="ok">healthy</span>: database ' + esc(h.database) + ', storage ' + esc(h.storage)
      : '<span class="bad">unhealthy</span>: database ' + esc(h.database) + ', storage ' + esc(h.storage);
  }).catch((e) => { $('health').innerHTML = '<span class="bad">unreachable: ' + esc(e.message) + '</span>'; });
  try {
    const { caches } = await api('/_api/v1/caches');
    const rows = await Promise.all(caches.map(async (c) => {
      const s = await api('/_api/v1/caches/' + encodeURIComponent(c.name) + '/stats').catch(() => ({}));
      const saved = s.nar_bytes ? Math.max(0, 1 - s.stored_bytes / s.nar_bytes) : null;
      return '<tr><td>' + esc(c.name) + '</td><td>' + (c.is_public ? 'public' : 'private') + '</td><td><code>' + esc(c.url) +
        '</code><br><code>' + esc(c.public_key) + '</code></td><td class="num">' + (s.paths ?? '–') + '</td><td class="num">' +
        fmt(s.nar_bytes) + '</td><td class="num">' + fmt(s.stored_bytes) + '</td><td class="num">' +
        (saved == null ? '–' : (saved * 100).toFixed(0) + ' %') + '</td></tr>';
    }));
    $('caches').innerHTML = rows.join('') || '<tr><td colspan="7">No cache visible with this token.</td></tr>';
  } catch (e) {
    $('caches').innerHTML = '<tr><td colspan="7" class="bad">' + esc(e.message) + '</td></tr>';
  }
}
load();
</script></body></html>`;

export function dashboardRoutes(app: FastifyInstance): void {
  app.get('/dashboard', async (_req, reply) => reply.type('text/html; charset=utf-8').send(PAGE));
}
