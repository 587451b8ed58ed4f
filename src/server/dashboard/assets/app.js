// The Loft dashboard: one page script for /dashboard, /dashboard/{cache} and /dashboard/{cache}/{hash}.
// It reads the JSON API with the signed-in token (kept in this tab's sessionStorage, sent only as a
// Bearer header) and builds the DOM with textContent and attributes only: no HTML is ever parsed from data.
import { lineChart } from '/_dashboard/chart.js';

const TOKEN_KEY = 'loft-token';
const $ = (id) => document.getElementById(id);

/** Creates an element; children are nodes or strings (always text). */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) if (c !== null && c !== undefined) el.append(c instanceof Node ? c : String(c));
  return el;
}

const token = () => sessionStorage.getItem(TOKEN_KEY);

async function api(path, init = {}) {
  const headers = new Headers(init.headers);
  // Without it, a 401 carries a Basic challenge and the browser would prompt for a password.
  headers.set('x-requested-with', 'loft-dashboard');
  const t = token();
  if (t) headers.set('authorization', `Bearer ${t}`);
  const res = await fetch(path, { ...init, headers });
  if (!res.ok) {
    const body = await res.json().catch(() => ({}));
    const err = new Error(body.message || `${res.status} ${res.statusText}`);
    err.status = res.status;
    throw err;
  }
  return res.status === 204 ? null : res.headers.get('content-type')?.includes('json') ? res.json() : res.text();
}

export const fmtBytes = (n) => {
  if (n === null || n === undefined) return '–';
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let i = 0;
  let v = n;
  while (v >= 1000 && i < units.length - 1) { v /= 1000; i++; }
  return `${i === 0 ? v : v.toFixed(v >= 100 ? 0 : 1)} ${units[i]}`;
};
const fmtPct = (r) => (r === null || r === undefined ? '–' : `${(r * 100).toFixed(r >= 0.995 || r === 0 ? 0 : 1)} %`);
const fmtTime = (iso) => (iso ? new Date(iso).toLocaleString() : '–');
const cacheHref = (cache) => `/dashboard/${encodeURIComponent(cache)}`;
const pathHref = (cache, hash) => `${cacheHref(cache)}/${encodeURIComponent(hash)}`;

function showError(e) {
  const el = $('error');
  el.textContent = e instanceof Error ? e.message : String(e);
  el.hidden = false;
}

function render(...nodes) {
  $('view').replaceChildren(...nodes.filter((n) => n !== null));
}

function crumbs(...parts) {
  $('crumbs').replaceChildren(...parts.flatMap((p, i) => (i ? [' / ', p] : [p])));
}

function table(headers, rows, empty) {
  const head = h('tr', {}, headers.map((x) => h('th', { class: x.num ? 'num' : undefined }, x.label ?? x)));
  const body = rows.length ? rows : [h('tr', {}, h('td', { colspan: headers.length, class: 'muted' }, empty))];
  return h('table', {}, h('thead', {}, head), h('tbody', {}, body));
}

const card = (label, value) => h('div', { class: 'card' }, h('div', { class: 'v' }, value), h('div', { class: 'k' }, label));

// ---- sign-in ----

async function setUpSignIn() {
  const form = $('signin');
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const value = $('token').value.trim();
    $('token').value = '';
    if (!value) return;
    sessionStorage.setItem(TOKEN_KEY, value);
    try {
      await api('/_api/v1/whoami');
    } catch (e) {
      sessionStorage.removeItem(TOKEN_KEY);
      showError(`Sign-in failed: ${e.message}`);
      return;
    }
    location.reload();
  });
  $('signout').addEventListener('click', () => {
    sessionStorage.removeItem(TOKEN_KEY);
    location.reload();
  });
  if (!token()) return { anonymous: true, admin: false, sub: 'anonymous' };
  try {
    const me = await api('/_api/v1/whoami');
    $('who').textContent = `signed in as ${me.sub}${me.admin ? ' (admin)' : ''}`;
    $('token').hidden = true;
    $('signin-button').hidden = true;
    $('signout').hidden = false;
    return me;
  } catch (e) {
    sessionStorage.removeItem(TOKEN_KEY);
    showError(`Signed out: ${e.message}`);
    return { anonymous: true, admin: false, sub: 'anonymous' };
  }
}

// ---- overview ----

async function overview(me) {
  crumbs('overview');
  const { caches } = await api('/_api/v1/dashboard/caches');
  const rows = caches.map((c) =>
    h('tr', { 'data-cache': c.name },
      h('td', {}, h('a', { href: cacheHref(c.name) }, c.name)),
      h('td', {}, c.is_public ? 'public' : 'private'),
      h('td', { class: 'num' }, c.paths),
      h('td', { class: 'num' }, fmtBytes(c.nar_bytes)),
      h('td', { class: 'num' }, fmtBytes(c.stored_bytes)),
      h('td', { class: 'num' }, fmtPct(c.dedup_saving)),
      h('td', { class: 'num' }, fmtPct(c.hit_rate)),
      h('td', {}, fmtTime(c.last_push_at))));
  const heads = ['cache', 'visibility', { label: 'paths', num: true }, { label: 'NAR bytes', num: true }, { label: 'stored', num: true },
    { label: 'dedup saving', num: true }, { label: 'hit rate (7 d)', num: true }, 'last push'];
  const parts = [h('h1', {}, 'Caches'), table(heads, rows, me.anonymous ? 'No public cache. Sign in to see private caches.' : 'No cache visible with this token.')];
  if (me.admin) parts.push(...(await adminSections()));
  render(...parts);
}

async function adminSections() {
  const [{ passes }, { hours }, { tokens }] = await Promise.all([
    api('/_api/v1/gc/passes?limit=20'), api('/_api/v1/gc/history?hours=720'), api('/_api/v1/tokens'),
  ]);
  const passRows = passes.map((p) =>
    h('tr', { 'data-gc-pass': String(p.id) },
      h('td', {}, fmtTime(p.started_at)),
      h('td', {}, p.trigger),
      h('td', { class: 'mono' }, p.scope),
      h('td', { class: 'num' }, p.paths),
      h('td', { class: 'num' }, p.nars),
      h('td', { class: 'num' }, p.chunks),
      h('td', { class: 'num' }, fmtBytes(p.bytes_freed)),
      h('td', { class: 'num' }, `${(p.duration_ms / 1000).toFixed(1)} s`)));
  const recent = table(['started', 'trigger', 'caches', { label: 'paths', num: true }, { label: 'NARs', num: true },
    { label: 'chunks', num: true }, { label: 'freed', num: true }, { label: 'took', num: true }], passRows, 'No GC pass recorded yet.');
  const gcRows = hours.map((g) =>
    h('tr', {},
      h('td', {}, fmtTime(g.hour)),
      h('td', { class: 'num' }, g.passes),
      h('td', { class: g.failures ? 'num bad' : 'num' }, g.failures),
      h('td', { class: 'num' }, g.paths_expired),
      h('td', { class: 'num' }, g.nars_deleted),
      h('td', { class: 'num' }, g.chunks_deleted),
      h('td', { class: 'num' }, fmtBytes(g.bytes_freed))));
  const gc = table(['hour', { label: 'passes', num: true }, { label: 'failed', num: true }, { label: 'paths expired', num: true },
    { label: 'NARs deleted', num: true }, { label: 'chunks deleted', num: true }, { label: 'freed', num: true }], gcRows, 'No GC pass in the last 30 days.');
  const tokenTable = h('div', { id: 'tokens' });
  const drawTokens = (list) => {
    const rows = list.map((t) => {
      const perms = Object.entries(t.caches).map(([p, v]) => `${p}: ${v.join(', ')}`).join('; ') + (t.admin ? ' (admin)' : '');
      const revoked = t.revoked_at !== null;
      const button = revoked ? null : h('button', {
        type: 'button',
        'data-jti': t.jti,
        onclick: async (ev) => {
          ev.target.disabled = true;
          try {
            await api(`/_api/v1/tokens/${encodeURIComponent(t.jti)}/revoke`, { method: 'POST' });
            drawTokens((await api('/_api/v1/tokens')).tokens);
          } catch (e) { showError(e); ev.target.disabled = false; }
        },
      }, 'revoke');
      return h('tr', { 'data-jti': t.jti },
        h('td', {}, t.sub), h('td', { class: 'mono' }, perms), h('td', {}, fmtTime(t.created_at)), h('td', {}, fmtTime(t.expires_at)),
        h('td', { class: revoked ? 'bad' : 'ok' }, revoked ? `revoked ${fmtTime(t.revoked_at)}` : new Date(t.expires_at) < new Date() ? 'expired' : 'active'),
        h('td', {}, button));
    });
    tokenTable.replaceChildren(table(['sub', 'permissions', 'issued', 'expires', 'status', ''], rows, 'No token issued through the API.'));
  };
  drawTokens(tokens);
  return [h('h2', {}, 'Garbage collection: recent passes'), recent, h('h2', {}, 'Garbage collection (per hour)'), gc, h('h2', {}, 'Issued tokens'), tokenTable];
}

// ---- cache page ----

async function cachePage(cache) {
  crumbs(h('a', { href: '/dashboard' }, 'overview'), cache);
  const hours = Number(new URLSearchParams(location.search).get('hours')) || 48;
  const enc = encodeURIComponent(cache);
  const [config, stats, history, pushes] = await Promise.all([
    api(`/_api/v1/cache-config/${enc}`),
    api(`/_api/v1/caches/${enc}/stats`),
    api(`/_api/v1/caches/${enc}/history?hours=${hours}`),
    api(`/_api/v1/caches/${enc}/pushes?limit=20`),
  ]);
  const pts = history.hours;
  const x = pts.map((p) => new Date(p.hour));
  const lookups = pts.map((p) => p.narinfo_hits + p.narinfo_misses);
  const hitTotal = pts.reduce((n, p) => n + p.narinfo_hits, 0);
  const lookupTotal = lookups.reduce((a, b) => a + b, 0);
  const saving = stats.nar_bytes > 0 ? Math.max(0, 1 - stats.stored_bytes / stats.nar_bytes) : null;
  const range = h('select', { id: 'range', onchange: (ev) => { location.search = `?hours=${ev.target.value}`; } },
    [24, 48, 168, 720].map((n) => h('option', { value: n, selected: n === hours }, n < 168 ? `last ${n} h` : `last ${n / 24} days`)));
  const charts = h('div', { class: 'charts' },
    lineChart('Hit rate', x, [{ name: 'narinfo hit rate', values: pts.map((p, i) => (lookups[i] ? p.narinfo_hits / lookups[i] : null)) }], fmtPct, { max: 1 }),
    lineChart('Requests', x, [
      { name: 'narinfo hits', values: pts.map((p) => p.narinfo_hits) },
      { name: 'narinfo misses', values: pts.map((p) => p.narinfo_misses) },
      { name: 'NAR downloads', values: pts.map((p) => p.nar_downloads) },
      { name: 'pushes', values: pts.map((p) => p.pushes_ok) },
      { name: 'failed pushes', values: pts.map((p) => p.pushes_failed) },
    ], String),
    lineChart('Bytes served and received', x, [
      { name: 'served', values: pts.map((p) => p.bytes_served) },
      { name: 'received', values: pts.map((p) => p.bytes_received) },
    ], fmtBytes),
    lineChart('Storage', x, [
      { name: 'NAR bytes', values: pts.map((p) => p.nar_bytes) },
      { name: 'stored bytes', values: pts.map((p) => p.stored_bytes) },
    ], fmtBytes),
    lineChart('Dedup saving', x, [
      { name: '1 − stored / NAR bytes', values: pts.map((p) => (p.nar_bytes ? Math.max(0, 1 - p.stored_bytes / p.nar_bytes) : null)) },
    ], fmtPct, { max: 1 }));
  const pushRows = pushes.pushes.map((p) =>
    h('tr', {}, h('td', {}, fmtTime(p.at)), h('td', {}, p.sub), h('td', {}, p.via), h('td', { class: 'num' }, p.paths), h('td', { class: 'num' }, fmtBytes(p.bytes))));
  const results = h('div', { id: 'results' });
  const input = h('input', { id: 'q', type: 'search', placeholder: 'store path name or hash', 'aria-label': 'search store paths' });
  const search = h('form', {
    class: 'search',
    onsubmit: async (ev) => {
      ev.preventDefault();
      const q = input.value.trim();
      if (!q) return;
      try {
        const { paths } = await api(`/_api/v1/caches/${enc}/search?q=${encodeURIComponent(q)}`);
        results.replaceChildren(table(['store path', { label: 'NAR size', num: true }, 'pushed'], paths.map((p) =>
          h('tr', {}, h('td', {}, h('a', { href: pathHref(cache, p.store_path_hash), class: 'mono' }, p.store_path)),
            h('td', { class: 'num' }, fmtBytes(p.nar_size)), h('td', {}, fmtTime(p.created_at)))), `No path matches “${q}”.`));
      } catch (e) { showError(e); }
    },
  }, input, h('button', { type: 'submit' }, 'Search'));
  render(
    h('h1', {}, cache, ' ', h('span', { class: 'muted' }, config.is_public ? '(public)' : '(private)')),
    h('dl', { class: 'fields' }, h('dt', {}, 'substituter'), h('dd', { class: 'mono' }, config.url), h('dt', {}, 'public key'), h('dd', { class: 'mono' }, config.public_key)),
    h('h2', {}, 'Now'),
    h('div', { class: 'cards' },
      card('paths', stats.paths), card('NAR bytes', fmtBytes(stats.nar_bytes)), card('stored bytes', fmtBytes(stats.stored_bytes)),
      card('dedup saving', fmtPct(saving)), card(`hit rate (${hours} h)`, fmtPct(lookupTotal ? hitTotal / lookupTotal : null)),
      card(`NAR downloads (${hours} h)`, pts.reduce((n, p) => n + p.nar_downloads, 0))),
    h('h2', {}, 'Over time ', range),
    charts,
    h('h2', {}, 'Search'), search, results,
    h('h2', {}, 'Recent pushes'),
    table(['when', 'token sub', 'via', { label: 'paths', num: true }, { label: 'bytes sent', num: true }], pushRows, 'No push recorded yet.'),
  );
}

// ---- path page ----

function listingTree(name, node, budget) {
  if (budget.left-- <= 0) return null;
  let label = name;
  if (node.type === 'directory') label += '/';
  else if (node.type === 'symlink') label += ` → ${node.target}`;
  else label += `  ${fmtBytes(node.size)}${node.executable ? '  (executable)' : ''}`;
  const li = h('li', { 'data-type': node.type }, label);
  if (node.type === 'directory') {
    const kids = Object.keys(node.entries).sort().map((k) => listingTree(k, node.entries[k], budget)).filter(Boolean);
    if (kids.length) li.append(h('ul', { class: 'tree' }, kids));
  }
  return li;
}

/** A link that downloads with the signed-in token (a plain link would carry no credentials). */
function downloadLink(href, filename, label) {
  return h('a', {
    href,
    download: filename,
    onclick: async (ev) => {
      if (!token()) return;
      ev.preventDefault();
      try {
        const res = await fetch(href, { headers: { authorization: `Bearer ${token()}`, 'x-requested-with': 'loft-dashboard' } });
        if (!res.ok) throw new Error(`${res.status} ${res.statusText}`);
        const url = URL.createObjectURL(await res.blob());
        const a = h('a', { href: url, download: filename });
        document.body.append(a);
        a.click();
        a.remove();
        setTimeout(() => URL.revokeObjectURL(url), 10_000);
      } catch (e) { showError(`download failed: ${e.message}`); }
    },
  }, label);
}

async function pathPage(cache, hash) {
  const enc = encodeURIComponent(cache);
  crumbs(h('a', { href: '/dashboard' }, 'overview'), h('a', { href: cacheHref(cache) }, cache), hash);
  const [info, listing] = await Promise.all([
    api(`/_api/v1/path-info/${enc}/${encodeURIComponent(hash)}`),
    api(`/${enc}/${encodeURIComponent(hash)}.ls`).catch((e) => ({ error: e.message })),
  ]);
  const ref = (base) => {
    const refHash = base.slice(0, 32);
    return h('li', {}, refHash === hash ? h('span', { class: 'mono' }, `${base} (itself)`) : h('a', { href: pathHref(cache, refHash), class: 'mono' }, base));
  };
  const fileName = `${info.file_hash.replace(/^sha256:/, '')}.nar.zst`;
  const field = (k, v) => [h('dt', {}, k), h('dd', { class: 'mono' }, v ?? '–')];
  const budget = { left: 5000 };
  render(
    h('h1', { class: 'mono' }, info.store_path),
    h('dl', { class: 'fields', id: 'narinfo' },
      field('StorePath', info.store_path),
      field('NarHash', info.nar_hash),
      field('NarSize', `${info.nar_size} (${fmtBytes(info.nar_size)})`),
      field('URL', `nar/${fileName}`),
      field('FileHash', info.file_hash),
      field('FileSize', `${info.file_size} (${fmtBytes(info.file_size)})`),
      field('Deriver', info.deriver),
      field('CA', info.ca),
      field('Sig', info.sigs.length ? info.sigs.join(' ') : null),
      field('chunks', `${info.chunks}, ${fmtBytes(info.shared_bytes)} shared with other NARs (${fmtPct(info.dedup_ratio)})`),
      field('closure', `${info.closure.paths} paths, ${fmtBytes(info.closure.nar_bytes)}${info.closure.missing ? `, ${info.closure.missing} references not in this cache` : ''}`),
      field('pushed', `${fmtTime(info.created_at)} by ${info.created_by ?? 'unknown'}`),
      field('last used', fmtTime(info.last_accessed_at)),
      field('GC', info.collectable_after === null
        ? 'kept forever (no retention period)'
        : info.referrers.length
          ? `kept while a path that refers to it is kept; otherwise collectable after ${fmtTime(info.collectable_after)} if unused`
          : new Date(info.collectable_after) <= new Date()
            ? 'collectable by the next GC pass (unused for longer than the retention period)'
            : `collectable after ${fmtTime(info.collectable_after)} if unused until then`)),
    h('p', {}, 'Download: ', downloadLink(`/${enc}/nar/${fileName}`, fileName, 'NAR (zstd)'), ' · ',
      downloadLink(`/${enc}/${encodeURIComponent(hash)}.narinfo`, `${hash}.narinfo`, 'narinfo')),
    h('h2', {}, `References (${info.references.length})`),
    info.references.length ? h('ul', { id: 'references' }, info.references.map(ref)) : h('p', { class: 'muted' }, 'none'),
    h('h2', {}, `Referrers in this cache (${info.referrers.length})`),
    info.referrers.length ? h('ul', { id: 'referrers' }, info.referrers.map((p) => ref(p.slice(p.lastIndexOf('/') + 1)))) : h('p', { class: 'muted' }, 'none'),
    h('h2', {}, 'Files'),
    listing.error ? h('p', { class: 'bad' }, listing.error) : h('ul', { class: 'tree', id: 'files' }, listingTree(info.store_path.slice(info.store_path.lastIndexOf('/') + 1), listing.root, budget)),
    budget.left < 0 ? h('p', { class: 'muted' }, 'Listing cut at 5000 entries.') : null,
  );
}

// ---- start ----

async function health() {
  try {
    const res = await fetch('/v1/healthz');
    const b = await res.json();
    $('health').replaceChildren(h('span', { class: b.status === 'ok' ? 'ok' : 'bad' }, b.status === 'ok' ? 'healthy' : 'unhealthy'), `: database ${b.database}, storage ${b.storage}`);
  } catch (e) {
    $('health').replaceChildren(h('span', { class: 'bad' }, `unreachable: ${e.message}`));
  }
}

async function main() {
  void health();
  const me = await setUpSignIn();
  const parts = location.pathname.replace(/^\/dashboard\/?/, '').split('/').filter(Boolean).map(decodeURIComponent);
  try {
    if (parts.length === 0) await overview(me);
    else if (parts.length === 1) await cachePage(parts[0]);
    else await pathPage(parts[0], parts[1]);
  } catch (e) {
    render(h('p', { class: 'muted' }, e.status === 401 ? 'Sign in with a token that may read this.' : 'Nothing to show.'));
    showError(e);
  }
}

void main();
