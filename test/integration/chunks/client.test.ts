// LoftClient's retry policy against a scripted HTTP server: 5xx and 429 are retried, other 4xx are not.
import assert from 'node:assert/strict';
import http from 'node:http';
import { test } from 'node:test';
import { LoftApiError, LoftClient } from '../../../src/client/http.ts';

async function scripted(answers: { status: number; headers?: Record<string, string>; body: unknown }[]) {
  const seen: { url: string; auth?: string }[] = [];
  const server = http.createServer((req, res) => {
    seen.push({ url: req.url!, auth: req.headers.authorization });
    const a = answers[Math.min(seen.length - 1, answers.length - 1)];
    res.writeHead(a.status, { 'content-type': 'application/json', ...a.headers }).end(JSON.stringify(a.body));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as { port: number };
  return { url: `http://127.0.0.1:${port}`, seen, close: () => new Promise((r) => server.close(r)) };
}

test('5xx and 429 (with Retry-After) are retried; the token is sent as Bearer', async (t) => {
  const s = await scripted([
    { status: 503, body: { error: 'unavailable', message: 'db down' } },
    { status: 429, headers: { 'retry-after': '0' }, body: { error: 'busy', message: 'slow down' } },
    { status: 200, body: { missing: ['ab'] } },
  ]);
  t.after(s.close);
  const client = new LoftClient({ endpoint: s.url + '/', token: 'secret', retries: 3 });
  assert.deepEqual(await client.missingChunks('main', ['ab']), ['ab']);
  assert.equal(s.seen.length, 3);
  assert.ok(s.seen.every((r) => r.url === '/_api/v1/chunks/missing' && r.auth === 'Bearer secret'));
});

test('other 4xx fail at once with the server message; retries give up after the limit', async (t) => {
  const s = await scripted([{ status: 403, body: { error: 'forbidden', message: "this token does not grant 'push'" } }]);
  t.after(s.close);
  const client = new LoftClient({ endpoint: s.url, retries: 3 });
  const err = await client.cacheConfig('main').catch((e: unknown) => e);
  assert.ok(err instanceof LoftApiError);
  assert.equal(err.status, 403);
  assert.equal(err.code, 'forbidden');
  assert.equal(err.message, "GET /_api/v1/cache-config/main: HTTP 403 this token does not grant 'push'");
  assert.equal(s.seen.length, 1);

  const down = await scripted([{ status: 500, body: { error: 'internal', message: 'internal server error' } }]);
  t.after(down.close);
  await assert.rejects(new LoftClient({ endpoint: down.url, retries: 1 }).serverInfo(), { status: 500 });
  assert.equal(down.seen.length, 2);
});

test('network errors are retried, then reported', async (t) => {
  // The first two requests have their connection cut before any answer; the third is answered.
  let attempts = 0;
  const flaky = http.createServer((req, res) => {
    if (++attempts <= 2) return req.socket.destroy();
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ missing: [] }));
  });
  await new Promise<void>((r) => flaky.listen(0, '127.0.0.1', r));
  t.after(() => new Promise((r) => flaky.close(r)));
  const { port } = flaky.address() as { port: number };
  assert.deepEqual(await new LoftClient({ endpoint: `http://127.0.0.1:${port}`, retries: 3 }).missingChunks('main', ['ab']), []);
  assert.equal(attempts, 3, 'two cut connections were retried');

  // Every connection cut: the error says so once the retries are used up.
  attempts = 0;
  const cutAlways = http.createServer((req) => {
    attempts++;
    req.socket.destroy();
  });
  await new Promise<void>((r) => cutAlways.listen(0, '127.0.0.1', r));
  t.after(() => new Promise((r) => cutAlways.close(r)));
  const cutPort = (cutAlways.address() as { port: number }).port;
  await assert.rejects(new LoftClient({ endpoint: `http://127.0.0.1:${cutPort}`, retries: 2 }).serverInfo(), /cannot reach http:\/\/127\.0\.0\.1:\d+ \(GET \/_api\/v1\/server-info\)/);
  assert.equal(attempts, 3, 'one attempt and two retries');
  const client = new LoftClient({ endpoint: 'http://127.0.0.1:9', retries: 1 });
  await assert.rejects(client.serverInfo(), /cannot reach http:\/\/127\.0\.0\.1:9 \(GET \/_api\/v1\/server-info\)/);
});
