// An upstream behind an HTTP proxy named by the environment (src/upstream/proxy.ts): the narinfo
// (fetch, with Node's proxy support switched on as `loft serve` does) and the NAR (the downloader)
// both go through it; NO_PROXY hosts do not.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { BinaryCacheClient } from '../../../src/upstream/binary-cache-client.ts';
import { useEnvProxyForFetch } from '../../../src/upstream/proxy.ts';
import { startForwardProxy } from '../../helpers/http-proxy.ts';

const HASH = '0i6hwv44lmkyzayphxyj0j0qkzrf284p';

test('a BinaryCacheClient reaches its upstream through the proxy of HTTP_PROXY, and directly when NO_PROXY names it', async () => {
  const nar = randomBytes(1024 * 1024);
  const upstream = http.createServer((req, res) => {
    if (req.url === `/${HASH}.narinfo`) return res.writeHead(200, { 'content-type': 'text/x-nix-narinfo' }).end(`StorePath: /nix/store/${HASH}-x\n`);
    if (req.url === '/nar/x.nar') return res.writeHead(200, { 'content-length': nar.length }).end(nar);
    res.writeHead(404).end();
  });
  await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
  const origin = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`;
  const proxy = await startForwardProxy();
  const saved = { HTTP_PROXY: process.env.HTTP_PROXY, NO_PROXY: process.env.NO_PROXY };
  const fetchVia = useEnvProxyForFetch({ HTTP_PROXY: proxy.url });
  process.env.HTTP_PROXY = proxy.url;
  try {
    assert.match(fetchVia!.note, new RegExp(`upstream requests go through ${proxy.url}`));
    const client = new BinaryCacheClient({ url: origin }, { timeoutMs: 5_000, maxConcurrency: 4 });
    assert.match((await client.narInfo(HASH))!, /^StorePath: /);
    const file = await client.nar('nar/x.nar');
    const pieces: Buffer[] = [];
    await file.read((piece, release) => {
      pieces.push(Buffer.from(piece));
      release();
    });
    assert.deepEqual(Buffer.concat(pieces), nar);
    // fetch tunnels (CONNECT) even to an http URL; the downloader asks the proxy in absolute form
    const host = origin.slice('http://'.length);
    assert.equal(proxy.log.filter((l) => l === `CONNECT ${host}` || l === `GET ${origin}/${HASH}.narinfo`).length, 1, proxy.log.join('\n'));
    assert.ok(proxy.log.includes(`GET ${origin}/nar/x.nar`), proxy.log.join('\n'));

    process.env.NO_PROXY = '127.0.0.1';
    const before = proxy.log.length;
    const direct = await client.nar('nar/x.nar');
    await direct.read((_piece, release) => release());
    assert.equal(proxy.log.length, before, 'NO_PROXY: straight to the upstream');
  } finally {
    fetchVia?.restore();
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
    await proxy.close();
    upstream.closeAllConnections();
    await new Promise((resolve) => upstream.close(resolve));
  }
});
