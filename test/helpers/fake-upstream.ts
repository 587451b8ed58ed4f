// A binary cache made the way cache.nixos.org's content is (`nix copy --to file://…` of store
// paths, signed with an upstream key), served over HTTP on 127.0.0.1 by a small static server
// that counts requests and can be switched into slow, failing, hanging or tampering behaviour.
import { createReadStream } from 'node:fs';
import { readFile, stat, writeFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { nix, nixEnv } from './nix.ts';

export interface UpstreamKeys {
  secretFile: string;
  publicKey: string;
}

/** A fresh upstream signing key, made by Nix itself. */
export async function generateUpstreamKey(dir: string, name = 'upstream-test-1'): Promise<UpstreamKeys> {
  const env = nixEnv(dir);
  const secret = await nix(['key', 'generate-secret', '--key-name', name], env);
  const secretFile = path.join(dir, `${name}.secret`);
  await writeFile(secretFile, secret, { mode: 0o600 });
  const { execFileSync } = await import('node:child_process');
  const publicKey = execFileSync('nix', ['key', 'convert-secret-to-public'], { input: secret, env }).toString().trim();
  return { secretFile, publicKey };
}

/** `nix copy --to file://dir?compression=…&secret-key=…` of the paths and their closures (unsigned without keys). */
export async function copyToFileCache(dir: string, paths: string[], keys: UpstreamKeys | undefined, compression = 'xz'): Promise<void> {
  const sign = keys ? `&secret-key=${keys.secretFile}` : '';
  await nix(['copy', '--to', `file://${dir}?compression=${compression}${sign}`, ...paths], nixEnv(dir));
}

export type UpstreamMode =
  | 'normal'
  /** Every request answered 500. */
  | 'fail'
  /** Connections accepted, never answered. */
  | 'hang'
  /** Bodies sent in small pieces with pauses. */
  | 'slow'
  /** NAR files sent without a Content-Length (chunked transfer coding), in 4 KiB pieces. */
  | 'chunked'
  /** narinfos served with their signatures' bytes altered. */
  | 'bad-signature'
  /** NAR files served changed by `tamperNar` (default: one byte in the middle flipped). */
  | 'tamper-nar';

export interface FakeUpstream {
  url: string;
  mode: UpstreamMode;
  /** When set, requests without `Authorization: <this>` get 401. */
  requireAuthorization?: string;
  tamperNar?: (file: Buffer) => Buffer;
  /** The pause between two 4 KiB pieces in 'slow' mode (default 20 ms), and in 'tamper-nar' mode when set. */
  slowDelayMs?: number;
  /** Requests received per URL path (the server's access log). */
  requests: Map<string, number>;
  count(pathPart: RegExp): number;
  /** Stops listening and drops open connections (an upstream outage). */
  close(): Promise<void>;
}

export async function serveFakeUpstream(dir: string): Promise<FakeUpstream> {
  const requests = new Map<string, number>();
  const server = http.createServer((req, res) => {
    const urlPath = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
    requests.set(urlPath, (requests.get(urlPath) ?? 0) + 1);
    void respond(up, dir, urlPath, req, res).catch(() => res.destroy());
  });
  server.keepAliveTimeout = 1000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const up: FakeUpstream = {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    mode: 'normal',
    requests,
    count: (re) => [...requests].filter(([p]) => re.test(p)).reduce((n, [, c]) => n + c, 0),
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
  return up;
}

async function respond(up: FakeUpstream, dir: string, urlPath: string, req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
  if (up.mode === 'hang') return; // never answered
  if (up.mode === 'fail') {
    res.writeHead(500).end('upstream is broken');
    return;
  }
  if (up.requireAuthorization && req.headers.authorization !== up.requireAuthorization) {
    res.writeHead(401).end('unauthorized');
    return;
  }
  const file = path.join(dir, path.normalize(urlPath));
  if (!file.startsWith(dir) || !(await stat(file).catch(() => undefined))?.isFile()) {
    res.writeHead(404).end('not found');
    return;
  }
  const type = urlPath.endsWith('.narinfo') ? 'text/x-nix-narinfo' : 'application/octet-stream';
  if (urlPath.endsWith('.narinfo') && up.mode === 'bad-signature') {
    const text = (await readFile(file, 'utf8')).replace(/^(Sig: [^:]+:)(.)/m, (_m, p: string, c: string) => p + (c === 'A' ? 'B' : 'A'));
    res.writeHead(200, { 'content-type': type }).end(text);
    return;
  }
  if (urlPath.startsWith('/nar/') && up.mode === 'tamper-nar') {
    const original = await readFile(file);
    const body = up.tamperNar ? up.tamperNar(original) : original;
    if (!up.tamperNar) body[body.length >> 1] ^= 0x01;
    res.writeHead(200, { 'content-type': type, 'content-length': body.length });
    if (up.slowDelayMs === undefined) res.end(body);
    else await writePaced(res, piecesOf(body, 4096), () => delay(up.slowDelayMs));
    return;
  }
  const size = (await stat(file)).size;
  const chunked = up.mode === 'chunked' && urlPath.startsWith('/nar/');
  res.writeHead(200, { 'content-type': type, ...(chunked ? {} : { 'content-length': size }) });
  if (req.method === 'HEAD') {
    res.end();
    return;
  }
  const stream = createReadStream(file, up.mode === 'slow' || chunked ? { highWaterMark: 4096 } : {});
  if (up.mode === 'slow' || chunked) {
    await writePaced(res, stream, () => (chunked ? new Promise(setImmediate) : delay(up.slowDelayMs ?? 20)));
    return;
  }
  stream.pipe(res);
}

/** Writes the pieces with a pause after each, then ends the response. */
async function writePaced(res: http.ServerResponse, pieces: AsyncIterable<Buffer> | Iterable<Buffer>, pause: () => Promise<unknown>): Promise<void> {
  for await (const piece of pieces) {
    res.write(piece);
    await pause();
  }
  res.end();
}

function* piecesOf(body: Buffer, size: number): Iterable<Buffer> {
  for (let at = 0; at < body.length; at += size) yield body.subarray(at, at + size);
}

function delay(ms: number | undefined): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
