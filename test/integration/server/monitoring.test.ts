// What operators watch: per-cache Prometheus metrics and the dashboard's hourly history counting real
// requests, written in batches and added up across replicas; the Grafana dashboard and alert rules in
// deploy/ naming only metrics a real server exposes; one JSON access line per request, never a secret.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { parse as parseYaml } from 'yaml';
import { DB_KINDS, freshDatabase } from '../../helpers/databases.ts';
import { postgresUnavailable, skipUnless } from '../../helpers/env.ts';
import { makeNar, randomStorePath, uploadPathMeta } from '../../helpers/nar.ts';
import { startTestServer, type TestServer } from '../../helpers/server.ts';
import { issueViaApi } from '../../helpers/tokens.ts';
import { loftEnv, startLoft, waitFor } from '../../helpers/processes.ts';
import { makeTempDir } from '../../helpers/tmp.ts';
import { UsageRecorder } from '../../../src/core/usage.ts';
import type { CacheSummary, UsagePoint } from '../../../src/api/v1.ts';

const DEPLOY = fileURLToPath(new URL('../../../deploy/', import.meta.url));

/** The value of one sample of /metrics, or undefined when absent. */
function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

async function scrape(server: TestServer): Promise<string> {
  const res = await server.fetch('/metrics');
  assert.equal(res.status, 200);
  return res.text();
}

/** Pushes a fresh path through `PUT /_api/v1/upload-path`; returns its hash and narinfo URL. */
async function pushPath(server: TestServer, cache: string, token: string, name: string): Promise<{ hash: string; url: string }> {
  const nar = await makeNar({ file: randomBytes(2000).toString('hex') });
  const sp = randomStorePath(name);
  const res = await server.fetch('/_api/v1/upload-path', {
    method: 'PUT',
    token,
    headers: { 'content-type': 'application/octet-stream', 'x-loft-nar-info': JSON.stringify(uploadPathMeta(cache, sp.path, nar)) },
    body: nar,
  });
  assert.equal(res.status, 200, await res.clone().text());
  const narinfo = await (await server.fetch(`/${cache}/${sp.hash}.narinfo`)).text();
  return { hash: sp.hash, url: /^URL: (.*)$/m.exec(narinfo)![1] };
}

for (const db of DB_KINDS) {
  test(`metrics and the hourly history count real requests, in batches, across replicas (${db})`, async (t) => {
    if (db === 'postgres' && !skipUnless(t, await postgresUnavailable())) return;
    const server = await startTestServer({ db, toml: { metrics: { history_flush_seconds: 0 } } });
    t.after(() => server.close());
    await server.createCache('m', { is_public: true });
    await server.createCache('team', { is_public: false });
    const pusher = await issueViaApi(server, { sub: 'builder', caches: { m: ['pull', 'push'] } });

    const a = await pushPath(server, 'm', pusher.token, 'metrics-a');
    await pushPath(server, 'm', pusher.token, 'metrics-b');
    // A push that fails: the metadata names a NAR hash the body does not have.
    const bad = uploadPathMeta('m', randomStorePath('metrics-bad').path, await makeNar('x'));
    const failed = await server.fetch('/_api/v1/upload-path', {
      method: 'PUT',
      token: pusher.token,
      headers: { 'content-type': 'application/octet-stream', 'x-loft-nar-info': JSON.stringify(bad) },
      body: await makeNar('y'),
    });
    assert.equal(failed.status, 400);
    // pushPath read each narinfo once (2 hits); 1 more hit and 2 misses; 2 NAR downloads.
    assert.equal((await server.fetch(`/m/${a.hash}.narinfo`)).status, 200);
    for (let i = 0; i < 2; i++) assert.equal((await server.fetch(`/m/${'1'.repeat(31)}${i}.narinfo`)).status, 404);
    let served = 0;
    for (let i = 0; i < 2; i++) {
      const res = await server.fetch(`/m/${a.url}`);
      assert.equal(res.status, 200);
      served += (await res.arrayBuffer()).byteLength;
    }

    // Nothing is written per request: the history waits for the replica's batch.
    assert.equal((await server.services.kysely.selectFrom('usage_hourly').selectAll().execute()).length, 0);

    const text = await scrape(server);
    assert.equal(sample(text, 'loft_narinfo_requests_total{cache="m",result="hit"}'), 3);
    assert.equal(sample(text, 'loft_narinfo_requests_total{cache="m",result="miss"}'), 2);
    assert.equal(sample(text, 'loft_push_requests_total{cache="m",result="ok"}'), 2);
    assert.equal(sample(text, 'loft_push_requests_total{cache="m",result="failed"}'), 1);
    assert.equal(sample(text, 'loft_cache_nar_bytes_served_total{cache="m"}'), served);
    assert.ok(sample(text, 'loft_push_bytes_received_total{cache="m"}')! > 4000);
    assert.equal(sample(text, 'loft_http_requests_total{method="GET",route="/:cache/:file",status="200"}'), 3);
    assert.equal(sample(text, 'loft_http_requests_total{method="GET",route="/:cache/:file",status="404"}'), 2);
    assert.equal(sample(text, 'loft_http_request_duration_seconds_count{method="GET",route="/:cache/:file"}'), 5);
    assert.equal(sample(text, 'loft_http_request_duration_seconds_bucket{le="2",method="GET",route="/:cache/nar/:file"}'), 2);
    assert.ok(sample(text, 'loft_db_pool_connections{state="in_use"}')! >= 0);
    assert.ok(sample(text, 'loft_worker_pool_tasks{state="queued"}')! >= 0);

    await server.services.usage.flush();
    const after = await scrape(server);
    const stored = sample(after, 'loft_cache_stored_bytes{cache="m"}')!;
    assert.ok(stored > 0, 'stored bytes measured at the flush');
    assert.equal(sample(after, 'loft_cache_paths{cache="m"}'), 2);
    assert.ok(sample(after, 'loft_cache_dedup_ratio{cache="m"}')! >= 0);

    const history = async () => {
      const res = await server.fetch('/_api/v1/caches/m/history?hours=2');
      assert.equal(res.status, 200);
      return ((await res.json()) as { hours: UsagePoint[] }).hours;
    };
    const [, now] = await history();
    assert.deepEqual(
      { ...now, hour: undefined },
      {
        hour: undefined,
        narinfo_hits: 3,
        narinfo_misses: 2,
        nar_downloads: 2,
        bytes_served: served,
        bytes_received: now.bytes_received,
        pushes_ok: 2,
        pushes_failed: 1,
        paths: 2,
        nar_bytes: now.nar_bytes,
        stored_bytes: stored,
      },
    );
    assert.ok(now.bytes_received > 4000 && now.nar_bytes! > 4000);
    const pushes = (await (await server.fetch('/_api/v1/caches/m/pushes')).json()) as { pushes: Array<Record<string, unknown>> };
    assert.deepEqual(pushes.pushes.map(({ sub, via, paths }) => ({ sub, via, paths })), [{ sub: 'builder', via: 'upload-path', paths: 2 }]);

    // Another replica's batch for the same hour adds to the row rather than replacing it.
    const cacheId = (await server.services.caches.find('m'))!.id;
    const replica = new UsageRecorder(server.services.kysely, { flushIntervalMs: 0, historyDays: 90 });
    replica.count(cacheId, 'narinfo_hits', 4);
    replica.count(cacheId, 'nar_downloads', 1);
    await replica.close();
    // History is bounded: a replica's flush in a new hour drops rows older than metrics.history_days.
    const old = Date.now() - 100 * 86400_000;
    await server.services.kysely.insertInto('usage_hourly').values({ cache_id: cacheId, hour: old - (old % 3600_000) }).execute();
    const pruner = new UsageRecorder(server.services.kysely, { flushIntervalMs: 0, historyDays: 90 });
    await pruner.close();
    const kept = await server.services.kysely.selectFrom('usage_hourly').select('hour').where('cache_id', '=', cacheId).execute();
    assert.ok(kept.every((r) => Number(r.hour) > old), 'the 100-day-old row is gone');
    const [, summed] = await history();
    assert.equal(summed.narinfo_hits, 7);
    assert.equal(summed.nar_downloads, 3);
    assert.equal(summed.pushes_ok, 2);

    // The overview's hit rate, and private caches only for tokens that may pull them.
    const overview = async (token?: string) =>
      ((await (await server.fetch('/_api/v1/dashboard/caches', { token })).json()) as { caches: CacheSummary[] }).caches;
    const anonymous = await overview();
    assert.deepEqual(anonymous.map((c) => c.name), ['m']);
    assert.equal(anonymous[0].hit_rate, 7 / 9);
    assert.ok(anonymous[0].last_push_at);
    const pushOnly = await issueViaApi(server, { sub: 'push-only', caches: { team: ['push'] } });
    assert.deepEqual((await overview(pushOnly.token)).map((c) => c.name), ['m']);
    const reader = await issueViaApi(server, { sub: 'reader', caches: { team: ['pull'] } });
    assert.deepEqual((await overview(reader.token)).map((c) => c.name), ['m', 'team']);
    assert.equal((await server.fetch('/_api/v1/caches/team/history')).status, 401);

    // Search takes LIKE wildcards literally; by name and by hash.
    const search = async (q: string) =>
      ((await (await server.fetch(`/_api/v1/caches/m/search?q=${encodeURIComponent(q)}`)).json()) as { paths: Array<{ store_path_hash: string }> }).paths;
    assert.equal((await search('metrics-')).length, 2);
    assert.deepEqual(await search('%'), []);
    assert.deepEqual(await search('metrics_a'), []);
    assert.deepEqual((await search(a.hash.slice(4, 20).toUpperCase())).map((p) => p.store_path_hash), [a.hash]);
    assert.equal((await server.fetch('/_api/v1/caches/m/search?q=')).status, 400);
    assert.equal((await server.fetch('/_api/v1/caches/m/history?hours=0')).status, 400);

    // GC passes: counted in the metrics and the per-hour history (admins only).
    assert.equal((await server.fetch('/_api/v1/gc', { method: 'POST', token: server.adminToken })).status, 200);
    assert.equal(sample(await scrape(server), 'loft_gc_passes_total{trigger="api",result="ok"}'), 1);
    assert.equal((await server.fetch('/_api/v1/gc/history', { token: pusher.token })).status, 403);
    const gc = (await (await server.fetch('/_api/v1/gc/history', { token: server.adminToken })).json()) as { hours: Array<{ passes: number }> };
    assert.equal(gc.hours[0].passes, 1);
  });
}

test('the Grafana dashboard and the alert rules parse and name only metrics a real server exposes', async (t) => {
  const server = await startTestServer({ db: 'sqlite' });
  t.after(() => server.close());
  const exposed = new Set(
    [...(await scrape(server)).matchAll(/^# TYPE (\S+) (\w+)$/gm)].flatMap(([, name, type]) =>
      type === 'histogram' ? [`${name}_bucket`, `${name}_sum`, `${name}_count`] : [name],
    ),
  );
  const grafana = JSON.parse(await readFile(`${DEPLOY}grafana/loft.json`, 'utf8')) as {
    panels: Array<{ title: string; targets: Array<{ expr: string }> }>;
    templating: { list: Array<{ query?: string }> };
  };
  const rules = parseYaml(await readFile(`${DEPLOY}prometheus/alerts.yml`, 'utf8')) as {
    groups: Array<{ rules: Array<{ alert: string; expr: string; annotations: { summary: string } }> }>;
  };
  const alerts = rules.groups.flatMap((g) => g.rules);
  const exprs = [
    ...grafana.panels.flatMap((p) => p.targets.map((x) => x.expr)),
    ...grafana.templating.list.map((v) => v.query ?? ''),
    ...alerts.map((r) => r.expr),
  ];
  const named = new Set(exprs.flatMap((e) => [...e.matchAll(/\bloft_[a-z0-9_]+/g)].map((m) => m[0])));
  assert.ok(named.size >= 10, [...named].join(', '));
  for (const name of named) assert.ok(exposed.has(name), `${name} is not in /metrics`);
  // The design's targets each have an alert and a panel.
  for (const want of ['LoftCacheHitRateLow', 'LoftPushSuccessRateLow', 'LoftPullLatencyHigh', 'LoftServerErrors', 'LoftStorageGrowthHigh']) {
    assert.ok(alerts.some((r) => r.alert === want), `alert ${want}`);
  }
  assert.match(alerts.find((r) => r.alert === 'LoftCacheHitRateLow')!.expr, /< 0\.70/);
  assert.match(alerts.find((r) => r.alert === 'LoftPushSuccessRateLow')!.expr, /< 0\.99/);
  assert.match(alerts.find((r) => r.alert === 'LoftPullLatencyHigh')!.expr, /histogram_quantile\(0\.95,[\s\S]*> 2\s*$/);
  const titles = grafana.panels.map((p) => p.title).join('\n');
  for (const want of [/hit rate/i, /push success/i, /p95/i, /5xx/i, /stored bytes/i]) assert.match(titles, want);
});

test('one JSON access line per request, with no secret in any line; access_log=off; metrics.token', async (t) => {
  const tmp = await makeTempDir('loft-access-log-');
  t.after(() => tmp.cleanup());
  const adminToken = `root-${randomBytes(12).toString('hex')}`;
  const base = loftEnv({ databaseUrl: `sqlite:${tmp.path}/loft.db`, dataDir: tmp.path, adminToken, tokenSecret: randomBytes(32).toString('base64') });
  const server = await startLoft({ mode: 'monolithic', env: { ...base, LOFT_DEFAULT_CACHE: 'main' } });
  t.after(() => server.kill('SIGKILL'));
  const basic = `Basic ${Buffer.from(`loft:${adminToken}`).toString('base64')}`;
  const requests: Array<[string, Record<string, string>, number]> = [
    ['/main/nix-cache-info', { authorization: `Bearer ${adminToken}` }, 200],
    [`/main/${'2'.repeat(32)}.narinfo`, { authorization: basic }, 404],
    ['/_api/v1/tokens', {}, 401],
    [`/_api/v1/caches/main/history?hours=3&token=${adminToken}`, { authorization: `Bearer ${adminToken}` }, 200],
  ];
  for (const [p, headers, status] of requests) assert.equal((await fetch(server.url + p, { headers })).status, status, p);
  await server.kill('SIGTERM');
  const out = server.output();
  assert.ok(!out.includes(adminToken), 'no line holds the token');
  assert.ok(!out.includes(basic.slice(6)), 'nor its Basic form');
  assert.doesNotMatch(out, /incoming request|request completed/);
  const lines = server.logs('request').filter((r) => r.route !== '/v1/healthz');
  assert.equal(lines.length, requests.length, JSON.stringify(lines, null, 1));
  for (const [i, rec] of lines.entries()) {
    assert.equal(rec.level, 30);
    assert.equal(rec.method, 'GET');
    assert.equal(rec.status, requests[i][2]);
    assert.equal(rec.path, requests[i][0].split('?')[0]);
    assert.equal(typeof rec.reqId, 'string');
    assert.equal(typeof rec.duration_ms, 'number');
    assert.ok('bytes' in rec && 'route' in rec);
  }
  assert.deepEqual(lines.map((r) => r.sub), ['root', 'root', 'anonymous', 'root']);
  assert.equal(lines[1].route, '/:cache/:file');

  // access_log = off: no access line; metrics.token: /metrics needs it.
  const quiet = await startLoft({ mode: 'api', env: { ...base, LOFT_ACCESS_LOG: 'off', LOFT_METRICS_TOKEN: 'scrape-secret' } });
  t.after(() => quiet.kill('SIGKILL'));
  assert.equal((await fetch(`${quiet.url}/metrics`)).status, 401);
  assert.equal((await fetch(`${quiet.url}/metrics`, { headers: { authorization: 'Bearer scrape-secret' } })).status, 200);
  assert.equal((await fetch(`${quiet.url}/metrics`, { headers: { authorization: `Bearer ${adminToken}` } })).status, 200);
  await quiet.kill('SIGTERM');
  assert.deepEqual(quiet.logs('request'), []);
  assert.ok(!quiet.output().includes('scrape-secret'));
});

test('two replicas on one PostgreSQL database add up in the history; SIGTERM flushes the batch', async (t) => {
  if (!skipUnless(t, await postgresUnavailable())) return;
  const tmp = await makeTempDir('loft-replicas-usage-');
  const database = await freshDatabase('postgres', tmp.path);
  t.after(async () => {
    await database.drop();
    await tmp.cleanup();
  });
  const env = loftEnv({ databaseUrl: database.url, dataDir: tmp.path, adminToken: 'root', tokenSecret: randomBytes(32).toString('base64') });
  // Replica A flushes every second; replica B only when it stops.
  const fast = `${tmp.path}/fast.toml`;
  const slow = `${tmp.path}/slow.toml`;
  await writeFile(fast, '[metrics]\nhistory_flush_seconds = 1\n');
  await writeFile(slow, '[metrics]\nhistory_flush_seconds = 3600\n');
  const a = await startLoft({ mode: 'api', env, config: fast });
  t.after(() => a.kill('SIGKILL'));
  const b = await startLoft({ mode: 'api', env, config: slow });
  t.after(() => b.kill('SIGKILL'));
  const auth = { authorization: 'Bearer root' };
  const created = await fetch(`${a.url}/_api/v1/cache-config/shared`, { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: '{"is_public":true}' });
  assert.equal(created.status, 201);
  const miss = (url: string, i: number) => fetch(`${url}/shared/${'3'.repeat(30)}${String(i).padStart(2, '0')}.narinfo`);
  for (let i = 0; i < 3; i++) assert.equal((await miss(a.url, i)).status, 404);
  for (let i = 0; i < 2; i++) assert.equal((await miss(b.url, i)).status, 404);
  const misses = async () => {
    const { hours } = (await (await fetch(`${b.url}/_api/v1/caches/shared/history?hours=1`)).json()) as { hours: UsagePoint[] };
    return hours[0].narinfo_misses;
  };
  await waitFor('replica A to flush its batch', async () => (await misses()) === 3, 20_000);
  await b.kill('SIGTERM');
  assert.equal(await misses().catch(() => undefined), undefined, 'replica B is gone');
  const { hours } = (await (await fetch(`${a.url}/_api/v1/caches/shared/history?hours=1`)).json()) as { hours: UsagePoint[] };
  assert.equal(hours[0].narinfo_misses, 5);
});
