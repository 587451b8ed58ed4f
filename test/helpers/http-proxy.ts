// A forward HTTP proxy on loopback for the upstream-proxy tests: absolute-form requests are
// forwarded with node:http, CONNECT opens a TCP tunnel; every request is logged.
import http from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';

export interface ForwardProxy {
  /** `http://127.0.0.1:PORT` */
  url: string;
  /** `GET http://…` and `CONNECT host:port`, in order. */
  log: string[];
  close(): Promise<void>;
}

/** With `authorization`, requests without `Proxy-Authorization: <it>` get 407. */
export async function startForwardProxy(authorization?: string): Promise<ForwardProxy> {
  const log: string[] = [];
  const sockets = new Set<net.Socket>();
  const allowed = (req: http.IncomingMessage) => authorization === undefined || req.headers['proxy-authorization'] === authorization;
  const server = http.createServer((req, res) => {
    log.push(`${req.method} ${req.url}`);
    if (!allowed(req)) return res.writeHead(407, { 'proxy-authenticate': 'Basic realm="test"' }).end();
    const { 'proxy-authorization': _, ...headers } = req.headers;
    // agent: false — not the global agent, which a test may have pointed at this proxy
    const onward = http.request(req.url!, { method: req.method, headers, agent: false }, (up) => {
      res.writeHead(up.statusCode!, up.headers);
      up.pipe(res);
    });
    onward.on('error', () => res.destroy());
    req.pipe(onward);
  });
  server.on('connect', (req: http.IncomingMessage, client: net.Socket, head: Buffer) => {
    log.push(`CONNECT ${req.url}`);
    sockets.add(client);
    client.on('error', () => {});
    if (!allowed(req)) return void client.end('HTTP/1.1 407 Proxy Authentication Required\r\n\r\n');
    const [host, port] = [req.url!.slice(0, req.url!.lastIndexOf(':')).replace(/^\[|\]$/g, ''), Number(req.url!.slice(req.url!.lastIndexOf(':') + 1))];
    const target = net.connect({ host, port }, () => {
      client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      if (head.length > 0) target.write(head);
      target.pipe(client);
      client.pipe(target);
    });
    sockets.add(target);
    target.on('error', () => client.destroy());
  });
  server.on('connection', (s: net.Socket) => sockets.add(s));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    log,
    close: () => {
      for (const s of sockets) s.destroy();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}
