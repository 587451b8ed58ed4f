// A fault-injecting HTTP proxy for putting in front of s3rver: requests pass through unchanged (the
// Host header too, so S3 signatures stay valid) until a fault is set — 5xx answers, added latency,
// connections reset before an answer, or response bodies cut short — for every request or a share.
import http from 'node:http';
import { once } from 'node:events';

export type Fault =
  | { kind: 'none' }
  | { kind: 'status'; status: number; share?: number }
  | { kind: 'latency'; ms: number; share?: number }
  | { kind: 'reset'; share?: number }
  /** The upstream answer is forwarded with its headers, then the connection is cut halfway through the body. */
  | { kind: 'truncate'; share?: number };

export interface FaultProxy {
  /** http://127.0.0.1:PORT */
  readonly url: string;
  set(fault: Fault): void;
  /** Requests seen and faults injected since the last set(). */
  counts(): { requests: number; injected: number };
  close(): Promise<void>;
}

export async function startFaultProxy(upstream: string): Promise<FaultProxy> {
  const target = new URL(upstream);
  let fault: Fault = { kind: 'none' };
  let requests = 0;
  let injected = 0;
  const agent = new http.Agent({ keepAlive: true });
  const server = http.createServer((req, res) => {
    requests++;
    const hit = fault.kind !== 'none' && Math.random() < (fault.share ?? 1);
    if (hit) injected++;
    const current = fault;
    if (hit && current.kind === 'reset') {
      req.socket.destroy();
      return;
    }
    if (hit && current.kind === 'status') {
      req.resume();
      const body = `<?xml version="1.0" encoding="UTF-8"?><Error><Code>InternalError</Code><Message>injected fault</Message></Error>`;
      res.writeHead(current.status, { 'content-type': 'application/xml', 'content-length': Buffer.byteLength(body) }).end(body);
      return;
    }
    const forward = () => {
      const up = http.request(
        { host: target.hostname, port: target.port, method: req.method, path: req.url, headers: req.headers, agent },
        (upRes) => {
          res.writeHead(upRes.statusCode ?? 502, upRes.headers);
          if (hit && current.kind === 'truncate') {
            const length = Number(upRes.headers['content-length'] ?? 0);
            let sent = 0;
            upRes.on('data', (d: Buffer) => {
              const room = Math.floor(length / 2) - sent;
              if (room > 0) res.write(d.subarray(0, room));
              sent += d.length;
              if (sent >= length / 2) {
                upRes.destroy();
                res.socket?.destroy();
              }
            });
            upRes.on('end', () => res.socket?.destroy());
            return;
          }
          upRes.pipe(res);
        },
      );
      up.on('error', () => res.socket?.destroy());
      req.pipe(up);
    };
    if (hit && current.kind === 'latency') setTimeout(forward, current.ms);
    else forward();
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  return {
    url: `http://127.0.0.1:${port}`,
    set(f) {
      fault = f;
      requests = 0;
      injected = 0;
    },
    counts: () => ({ requests, injected }),
    async close() {
      server.closeAllConnections();
      server.close();
      agent.destroy();
    },
  };
}
