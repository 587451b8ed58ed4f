// Builds NARs, compressed NAR files and narinfos for tests that talk to the server over HTTP.
import { createHash, randomBytes } from 'node:crypto';
import { createConnection } from 'node:net';
import { chmod, mkdir, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { check, createXz } from 'node-liblzma';
import { dumpPath } from '../../src/nix/nar/writer.ts';
import { encodeNixBase32, NIX_BASE32_ALPHABET } from '../../src/nix/base32.ts';
import { formatSha256Nix32 } from '../../src/nix/hash.ts';
import { formatNarInfo, type NarInfo } from '../../src/nix/narinfo.ts';
import { zstdCompressSync } from '../../src/compression/zstd.ts';
import { makeTempDir } from './tmp.ts';

/** A tree to archive: a string/Buffer is a regular file, `{ exec }` an executable, `{ link }` a symlink, an object a directory. */
export type Tree = string | Buffer | { exec: string | Buffer } | { link: string } | { [name: string]: Tree };

async function materialise(where: string, tree: Tree): Promise<void> {
  if (typeof tree === 'string' || Buffer.isBuffer(tree)) {
    await writeFile(where, tree);
    await chmod(where, 0o444);
  } else if ('exec' in tree && (typeof tree.exec === 'string' || Buffer.isBuffer(tree.exec))) {
    await writeFile(where, tree.exec);
    await chmod(where, 0o555);
  } else if ('link' in tree && typeof tree.link === 'string') {
    await symlink(tree.link, where);
  } else {
    await mkdir(where);
    for (const [name, sub] of Object.entries(tree as Record<string, Tree>)) await materialise(path.join(where, name), sub);
  }
}

/** Bytes a test sends with fetch (whose body type wants an ArrayBuffer-backed view). */
export type Bytes = Buffer<ArrayBuffer>;

async function collect(stream: Readable): Promise<Bytes> {
  const parts: Buffer[] = [];
  for await (const p of stream) parts.push(p as Buffer);
  return Buffer.concat(parts);
}

/** The NAR of `tree`, made by Loft's dumpPath on a real temporary directory (byte-identical to `nix-store --dump`). */
export async function makeNar(tree: Tree): Promise<Bytes> {
  const tmp = await makeTempDir('loft-nar-');
  try {
    const root = path.join(tmp.path, 'root');
    await materialise(root, tree);
    return await collect(dumpPath(root));
  } finally {
    await tmp.cleanup();
  }
}

/** A NAR with a directory of a few files, made unique by `seed` (random when omitted). */
export async function sampleNar(seed: string = randomBytes(8).toString('hex'), bigBytes = 0): Promise<Bytes> {
  return makeNar({
    bin: { hello: { exec: `#!/bin/sh\necho hello ${seed}\n` } },
    share: { doc: { README: `sample ${seed}\n`.repeat(20) } },
    big: bigBytes > 0 ? deterministicBytes(seed, bigBytes) : 'small',
    link: { link: 'share/doc/README' },
  });
}

/** Pseudo-random, incompressible but reproducible bytes. */
export function deterministicBytes(seed: string, size: number): Buffer {
  const out = Buffer.alloc(size);
  let block = createHash('sha256').update(seed).digest();
  for (let off = 0; off < size; off += block.length) {
    block.copy(out, off);
    block = createHash('sha256').update(block).digest();
  }
  return out;
}

/** `sha256:<nix32>` of bytes. */
export function sha256Nix32(bytes: Uint8Array): string {
  return formatSha256Nix32(createHash('sha256').update(bytes).digest());
}

/** The nix32 digest alone (what a `nar/<filehash>.nar.*` file name holds). */
export function nix32Of(bytes: Uint8Array): string {
  return encodeNixBase32(createHash('sha256').update(bytes).digest());
}

/** A random valid store path in /nix/store. */
export function randomStorePath(name = 'test-path'): { hash: string; baseName: string; path: string } {
  const bytes = randomBytes(32);
  let hash = '';
  for (let i = 0; i < 32; i++) hash += NIX_BASE32_ALPHABET[bytes[i] % 32];
  const baseName = `${hash}-${name}`;
  return { hash, baseName, path: `/nix/store/${baseName}` };
}

export type TestCompression = 'none' | 'zstd' | 'xz';

export const EXTENSION: Record<TestCompression, string> = { none: '', zstd: '.zst', xz: '.xz' };

export async function compress(data: Bytes, c: TestCompression): Promise<Bytes> {
  if (c === 'none') return data;
  if (c === 'zstd') return Buffer.from(zstdCompressSync(data, 3));
  const parts: Buffer[] = [];
  await pipeline(
    Readable.from([data]),
    // Nix's xz files carry a CRC64 check (node-liblzma's default is none).
    createXz({ check: check.CRC64 }) as unknown as NodeJS.ReadWriteStream,
    new Writable({
      write(chunk: Buffer, _enc, cb) {
        parts.push(chunk);
        cb();
      },
    }),
  );
  return Buffer.concat(parts);
}

/** What `nix copy --to http://…` would upload for one path. */
export interface NixUpload {
  storePath: { hash: string; baseName: string; path: string };
  nar: Bytes;
  file: Bytes;
  compression: TestCompression;
  /** `<filehash>.nar[.ext]`, the name under `nar/`. */
  fileName: string;
  narInfo: NarInfo;
}

/** Prepares a nix-copy-style upload of `nar` (compressed as asked) for a fresh or given store path. */
export async function nixUpload(
  nar: Bytes,
  opts: {
    compression?: TestCompression;
    storePath?: { hash: string; baseName: string; path: string };
    references?: string[];
    deriver?: string;
    sigs?: string[];
    ca?: string;
  } = {},
): Promise<NixUpload> {
  const compression = opts.compression ?? 'zstd';
  const file = await compress(nar, compression);
  const fileName = `${nix32Of(file)}.nar${EXTENSION[compression]}`;
  const storePath = opts.storePath ?? randomStorePath();
  return {
    storePath,
    nar,
    file,
    compression,
    fileName,
    narInfo: {
      storePath: storePath.path,
      url: `nar/${fileName}`,
      compression,
      fileHash: sha256Nix32(file),
      fileSize: file.length,
      narHash: sha256Nix32(nar),
      narSize: nar.length,
      references: opts.references ?? [],
      deriver: opts.deriver,
      sigs: opts.sigs ?? [],
      ca: opts.ca,
    },
  };
}

export function narInfoText(info: NarInfo, patch: Partial<NarInfo> = {}): string {
  return formatNarInfo({ ...info, ...patch });
}

/** The JSON of `X-Loft-Nar-Info` for `PUT /_api/v1/upload-path`. */
export function uploadPathMeta(
  cache: string,
  storePath: string,
  nar: Buffer,
  extra: { references?: string[]; deriver?: string | null; sigs?: string[]; ca?: string | null } = {},
): Record<string, unknown> {
  return {
    cache,
    store_path: storePath,
    nar_hash: sha256Nix32(nar),
    nar_size: nar.length,
    references: extra.references ?? [],
    deriver: extra.deriver ?? null,
    sigs: extra.sigs ?? [],
    ca: extra.ca ?? null,
  };
}

/** What came back for a raw HTTP request: the final status (if any response arrived) and how the connection ended. */
export interface RawResult {
  /** Status of the final (non-1xx) response, undefined when the server closed without answering. */
  status?: number;
  /** Informational responses seen first (100 Continue). */
  informational: number[];
  body: string;
  /** Milliseconds from sending to the connection closing. */
  ms: number;
}

/**
 * Sends a hand-made HTTP/1.1 request over a plain socket: `body` is written as
 * is whatever the declared Content-Length, then the socket is half-closed
 * (`end: 'half'`), fully destroyed (`end: 'destroy'`), or left open (`end:
 * 'open'`) until the server answers or closes. Resolves when the connection
 * closes or `timeoutMs` passes.
 */
export async function rawRequest(
  baseUrl: string,
  req: { method: string; path: string; headers: Record<string, string | number>; body?: Buffer; end: 'half' | 'destroy' | 'open'; timeoutMs?: number },
): Promise<RawResult> {
  const url = new URL(baseUrl);
  const socket = createConnection({ host: url.hostname, port: Number(url.port) });
  const started = Date.now();
  const head =
    `${req.method} ${req.path} HTTP/1.1\r\nHost: ${url.host}\r\n` +
    Object.entries(req.headers)
      .map(([k, v]) => `${k}: ${v}\r\n`)
      .join('') +
    '\r\n';
  const received: Buffer[] = [];
  return new Promise<RawResult>((resolve) => {
    let finished = false;
    const finish = () => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(parseRaw(Buffer.concat(received).toString('latin1'), Date.now() - started));
    };
    const timer = setTimeout(finish, req.timeoutMs ?? 10_000);
    socket.on('data', (d: Buffer) => {
      received.push(d);
      // With the connection left open, stop once a final response is complete.
      const parsed = parseRaw(Buffer.concat(received).toString('latin1'), 0);
      if (parsed.status !== undefined && parsed.complete) finish();
    });
    socket.on('error', () => finish());
    socket.on('close', finish);
    socket.once('connect', () => {
      socket.write(head);
      if (req.body && req.body.length > 0) socket.write(req.body);
      if (req.end === 'half') setTimeout(() => socket.end(), 50);
      if (req.end === 'destroy') setTimeout(() => socket.destroy(), 50);
    });
  });
}

function parseRaw(text: string, ms: number): RawResult & { complete: boolean } {
  const informational: number[] = [];
  let rest = text;
  for (;;) {
    const m = /^HTTP\/1\.1 (\d{3})[^\r\n]*\r\n/.exec(rest);
    if (!m) return { informational, body: '', ms, complete: false };
    const end = rest.indexOf('\r\n\r\n');
    if (end < 0) return { informational, body: '', ms, complete: false };
    const status = Number(m[1]);
    const headers = rest.slice(0, end);
    rest = rest.slice(end + 4);
    if (status >= 100 && status < 200) {
      informational.push(status);
      continue;
    }
    const len = /\r\ncontent-length: *(\d+)/i.exec(headers);
    const complete = len ? rest.length >= Number(len[1]) : false;
    return { status, informational, body: len ? rest.slice(0, Number(len[1])) : rest, ms, complete };
  }
}
