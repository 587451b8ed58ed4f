// Issue 13, item 6: a body is never read for a caller who could not use it, and a client
// trickling a body cannot hold a request open. Real server, SQLite+disk and PostgreSQL+S3.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createConnection } from 'node:net';
import { DB_KINDS } from '../../helpers/databases.ts';
import { postgresUnavailable, skipUnless } from '../../helpers/env.ts';
import { startTestServer } from '../../helpers/server.ts';
import { rawRequest } from '../../helpers/nar.ts';

/** Opens a request declaring `declared` bytes, then sends one byte every `everyMs` until the server answers. */
function trickle(baseUrl: string, path: string, headers: Record<string, string>, declared: number, everyMs: number) {
  const url = new URL(baseUrl);
  const socket = createConnection({ host: url.hostname, port: Number(url.port) });
  const started = Date.now();
  let text = '';
  let sent = 0;
  return new Promise<{ status?: number; body: string; ms: number; sent: number }>((resolve) => {
    const timer = setInterval(() => {
      if (sent < declared) socket.write(sent++ === 0 ? '{' : ' ');
    }, everyMs);
    const done = () => {
      clearInterval(timer);
      socket.destroy();
      const m = /^HTTP\/1\.1 (\d{3})/.exec(text);
      resolve({ status: m ? Number(m[1]) : undefined, body: text.slice(text.indexOf('\r\n\r\n') + 4), ms: Date.now() - started, sent });
    };
    socket.on('data', (d: Buffer) => {
      text += d.toString('latin1');
      if (/\r\n\r\n[\s\S]*\}/.test(text)) done();
    });
    socket.on('close', done);
    socket.on('error', done);
    socket.once('connect', () => {
      const head = Object.entries({ host: url.host, 'content-type': 'application/json', 'content-length': String(declared), ...headers });
      socket.write(`POST ${path} HTTP/1.1\r\n${head.map(([k, v]) => `${k}: ${v}\r\n`).join('')}\r\n`);
    });
  });
}

for (const db of DB_KINDS) {
  test(`slow and anonymous bodies are cut off (${db})`, { timeout: 180_000 }, async (t) => {
    if (db === 'postgres' && !skipUnless(t, await postgresUnavailable())) return;
    // Idle timeout above the trickle interval, so only the rate check can stop the slow body.
    const server = await startTestServer({ db, toml: { body_idle_timeout_ms: 60_000, min_body_rate: 1024, headers_timeout_ms: 2000 } });
    t.after(() => server.close());
    await server.createCache('main');

    await t.test('an anonymous trickling POST /_api/v1/chunks/missing gets 401 before its body is read', async () => {
      const res = await trickle(server.url, '/_api/v1/chunks/missing', {}, 10_000, 20_000);
      assert.equal(res.status, 401, res.body);
      assert.match(res.body, /needs a token/);
      assert.ok(res.sent <= 1, `the server waited for ${res.sent} trickled bytes`);
    });

    await t.test('an anonymous upload-path is refused before its body too', async () => {
      const res = await rawRequest(server.url, {
        method: 'PUT',
        path: '/_api/v1/upload-path',
        headers: { 'content-length': 1_000_000, 'x-loft-nar-info-preamble-size': 100 },
        end: 'open',
        timeoutMs: 60_000,
      });
      assert.equal(res.status, 401, res.body);
    });

    await t.test('an authenticated body slower than min_body_rate is cut off with 408', async () => {
      const res = await trickle(server.url, '/_api/v1/chunks/missing', { authorization: `Bearer ${server.adminToken}` }, 10_000, 500);
      assert.equal(res.status, 408, res.body);
      assert.match(res.body, /request body too slow: \d+ bytes in \d+ s, the minimum is 1024 bytes\/s/);
      // Held for the grace period, then cut at the first check (generous: the machine is shared).
      assert.ok(res.ms < 60_000, `took ${res.ms} ms`);
    });

    await t.test('headers that do not arrive within headers_timeout_ms get the connection closed', async () => {
      const url = new URL(server.url);
      const socket = createConnection({ host: url.hostname, port: Number(url.port) });
      const started = Date.now();
      let answer = '';
      socket.on('data', (d: Buffer) => (answer += d.toString('latin1')));
      socket.once('connect', () => socket.write('GET /v1/healthz HTTP/1.1\r\nhost: x\r\n'));
      await new Promise((resolve) => socket.once('close', resolve));
      const ms = Date.now() - started;
      assert.ok(ms >= 1500 && ms < 30_000, `closed after ${ms} ms`);
      assert.match(answer, /^HTTP\/1\.1 408/);
    });

    await t.test('a normal authenticated JSON request still works', async () => {
      const res = await server.fetch('/_api/v1/chunks/missing', {
        method: 'POST',
        token: server.adminToken,
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ cache: 'main', chunks: [] }),
      });
      assert.equal(res.status, 200, await res.text());
    });
  });
}
