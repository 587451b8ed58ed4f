// A chunk worker that dies fails the request whose work it held — an ingest, a download — and not
// the server: the pool replaces the worker and the next requests succeed.
import assert from 'node:assert/strict';
import type { Worker } from 'node:worker_threads';
import { deterministicBytes, makeNar, randomStorePath, sha256Nix32, uploadPathMeta } from '../../helpers/nar.ts';
import type { TestServer } from '../../helpers/server.ts';
import { waitFor } from '../../helpers/processes.ts';
import { onEachDatabase } from '../chunks/support.ts';

const workers = new Set<Worker>();
process.on('worker', (w) => {
  workers.add(w);
  w.once('exit', () => workers.delete(w));
});

function put(server: TestServer, nar: Buffer, body: BodyInit) {
  const sp = randomStorePath('crash-worker');
  return server.fetch('/_api/v1/upload-path', {
    method: 'PUT',
    token: server.adminToken,
    headers: { 'content-type': 'application/octet-stream', 'x-loft-nar-info': JSON.stringify(uploadPathMeta('main', sp.path, nar)) },
    body,
    duplex: 'half',
  } as RequestInit);
}

onEachDatabase('a crashed chunk worker fails its request, and the server carries on', async (_t, server) => {
  await server.createCache('main');
  const nar = await makeNar({ data: deterministicBytes('worker-crash', 8_000_000) });
  let sent = 0;
  let release: () => void = () => {};
  const halfway = new Promise<void>((resolve) => (release = resolve));
  const body = new ReadableStream<Uint8Array>({
    async pull(controller) {
      if (sent >= nar.length / 2) await halfway; // the ingest is under way in its worker session
      if (sent >= nar.length) return controller.close();
      controller.enqueue(nar.subarray(sent, sent + 512 * 1024));
      sent += 512 * 1024;
    },
  });
  const pushing = put(server, nar, body);
  await waitFor('half the NAR to be sent', () => sent >= nar.length / 2, 30_000);
  const before = new Set(workers);
  await Promise.all([...before].map((w) => w.terminate()));
  release();
  // The server may answer its 5xx and close while the body is still being sent: the client then sees
  // the connection fail (EPIPE) instead of the response. Either way the push failed.
  const res = await pushing.catch((e: Error) => e);
  if (res instanceof Error) assert.match(String(res.cause ?? res), /EPIPE|ECONNRESET|other side closed/);
  else {
    assert.ok(res.status >= 500, `the push whose worker died fails (${res.status})`);
    await res.body?.cancel();
  }
  await waitFor('replacement workers', () => [...workers].filter((w) => !before.has(w)).length >= 2, 30_000);

  const again = await put(server, nar, nar);
  assert.equal(again.status, 200, await again.text());
  const plain = await server.fetch(`/main/nar/${sha256Nix32(nar).slice(7)}.nar`, { token: server.adminToken });
  assert.ok(Buffer.from(await plain.arrayBuffer()).equals(nar));
  const health = await server.fetch('/v1/healthz');
  assert.equal(health.status, 200);
});
