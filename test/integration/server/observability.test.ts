// Health, metrics, the landing page and the dashboard: what operators look at.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startTestServer } from '../../helpers/server.ts';

test('metrics count requests by route pattern; caches appear by name, store paths never', async (t) => {
  const server = await startTestServer({ db: 'sqlite' });
  t.after(() => server.close());
  await server.createCache('secret-team-cache', { is_public: true });
  await server.fetch('/secret-team-cache/nix-cache-info');
  await server.fetch('/secret-team-cache/00000000000000000000000000000000.narinfo');
  const res = await server.fetch('/metrics');
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', /text\/plain/);
  const text = await res.text();
  assert.match(text, /loft_http_requests_total\{method="GET",route="\/:cache\/nix-cache-info",status="200"\} 1/);
  assert.match(text, /loft_http_requests_total\{method="GET",route="\/:cache\/:file",status="404"\} 1/);
  assert.match(text, /loft_http_request_duration_seconds_bucket/);
  assert.match(text, /loft_process_resident_memory_bytes/);
  assert.match(text, /loft_narinfo_requests_total\{cache="secret-team-cache",result="miss"\} 1/);
  assert.doesNotMatch(text, /00000000000000000000000000000000/);
});

test('healthz reports the database and the storage, the landing page lists public caches, the dashboard loads', async (t) => {
  const server = await startTestServer({ db: 'sqlite' });
  t.after(() => server.close());
  const key = await server.createCache('pub', { is_public: true });
  await server.createCache('priv');
  assert.deepEqual(await (await server.fetch('/v1/healthz')).json(), { status: 'ok', database: 'ok', storage: 'ok' });
  const landing = await (await server.fetch('/')).text();
  assert.ok(landing.includes(key), 'public key of the public cache');
  assert.ok(!landing.includes('priv'), 'private caches are not listed');
  for (const page of ['/dashboard', '/dashboard/pub', `/dashboard/pub/${'0'.repeat(32)}`]) {
    const dash = await server.fetch(page);
    assert.equal(dash.status, 200);
    assert.match(dash.headers.get('content-security-policy') ?? '', /script-src 'self'/);
    assert.match(await dash.text(), /<title>Loft dashboard<\/title>[\s\S]*\/_dashboard\/app\.js/);
  }
  for (const [asset, type] of [['app.js', /javascript/], ['chart.js', /javascript/], ['app.css', /css/]] as const) {
    const res = await server.fetch(`/_dashboard/${asset}`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', type);
  }
  assert.equal((await server.fetch('/_dashboard/nope.js')).status, 404);
  assert.equal((await server.createCache('dashboard').catch((e: Error) => e.message)), 'creating cache dashboard: 400 {"error":"bad_request","message":"cache name \'dashboard\' is reserved: the server\'s web dashboard lives at /dashboard"}');
});

test('healthz answers 503 when the storage is gone', async (t) => {
  const server = await startTestServer({ db: 'sqlite' });
  t.after(() => server.close());
  // Make the storage root unusable: a file where the directory should be.
  const { rm, writeFile } = await import('node:fs/promises');
  const root = (server.config.storage as { path: string }).path;
  await rm(root, { recursive: true, force: true });
  await writeFile(root, 'not a directory');
  const res = await server.fetch('/v1/healthz');
  assert.equal(res.status, 503);
  const body = (await res.json()) as { status: string; database: string; storage: string };
  assert.equal(body.status, 'unavailable');
  assert.equal(body.database, 'ok');
  assert.match(body.storage, /^error: /);
});
