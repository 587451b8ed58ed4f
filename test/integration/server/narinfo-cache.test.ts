// Narinfos are cached briefly; a push or deletion on this server is visible at once anyway.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startTestServer } from '../../helpers/server.ts';
import { randomStorePath, sampleNar, uploadPathMeta } from '../../helpers/nar.ts';

test('a cached miss does not hide a path pushed right after, nor a cached hit a deleted one', async (t) => {
  const server = await startTestServer({ db: 'sqlite' });
  t.after(() => server.close());
  await server.createCache('c', { is_public: true });
  const sp = randomStorePath('cached');
  const nar = await sampleNar('cached');
  assert.equal((await server.fetch(`/c/${sp.hash}.narinfo`)).status, 404);
  const put = await server.fetch('/_api/v1/upload-path', {
    method: 'PUT',
    token: server.adminToken,
    headers: { 'content-type': 'application/octet-stream', 'x-loft-nar-info': JSON.stringify(uploadPathMeta('c', sp.path, nar)) },
    body: nar,
  });
  assert.equal(put.status, 200);
  const hit = await server.fetch(`/c/${sp.hash}.narinfo`);
  assert.equal(hit.status, 200);
  assert.match(await hit.text(), new RegExp(`StorePath: ${sp.path}`));
  const del = await server.fetch('/_api/v1/delete-paths', {
    method: 'POST',
    token: server.adminToken,
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ cache: 'c', store_path_hashes: [sp.hash] }),
  });
  assert.equal(del.status, 200);
  assert.equal((await server.fetch(`/c/${sp.hash}.narinfo`)).status, 404);
});

test('a narinfo miss keeps the keep-alive connection open (Nix checks many paths on one)', async (t) => {
  const server = await startTestServer({ db: 'sqlite' });
  t.after(() => server.close());
  await server.createCache('c', { is_public: true });
  const http = await import('node:http');
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  t.after(() => agent.destroy());
  const sockets = new Set<unknown>();
  for (let i = 0; i < 3; i++) {
    const { status, connection } = await new Promise<{ status?: number; connection?: string }>((resolve, reject) => {
      const req = http.get(`${server.url}/c/${randomStorePath('miss').hash}.narinfo`, { agent }, (res) => {
        sockets.add(req.socket);
        res.resume();
        res.on('end', () => resolve({ status: res.statusCode, connection: res.headers.connection }));
      });
      req.on('error', reject);
    });
    assert.equal(status, 404);
    assert.notEqual(connection, 'close');
  }
  assert.equal(sockets.size, 1, 'all three lookups used one connection');
});
