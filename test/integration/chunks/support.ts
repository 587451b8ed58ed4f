// Shared setup of the chunk-protocol suites: a server per database, tokens, NAR metadata, raw records.
import { test, type TestContext } from 'node:test';
import { createHash } from 'node:crypto';
import { DB_KINDS, type DbKind } from '../../helpers/databases.ts';
import { postgresUnavailable, skipUnless } from '../../helpers/env.ts';
import { startTestServer, type TestServer } from '../../helpers/server.ts';
import { randomStorePath, sha256Nix32 } from '../../helpers/nar.ts';
import { chunkBuffer } from '../../../src/chunking/fastcdc.ts';
import { zstdCompressSync } from '../../../src/compression/zstd.ts';
import { ChunkWorkerPool } from '../../../src/compression/pool.ts';
import { chunkRecordHeader, LoftClient } from '../../../src/client/http.ts';
import type { NarMeta } from '../../../src/client/push-nar.ts';

/** Runs `body` once per database, each against a fresh server. */
export function onEachDatabase(
  name: string,
  body: (t: TestContext, server: TestServer, db: DbKind) => Promise<void>,
  opts: { timeout?: number; toml?: Record<string, unknown> } = {},
): void {
  for (const db of DB_KINDS) {
    test(`${name} (${db})`, { timeout: opts.timeout ?? 60_000 }, async (t) => {
      if (db === 'postgres' && !skipUnless(t, await postgresUnavailable())) return;
      const server = await startTestServer({ db, toml: opts.toml });
      t.after(() => server.close());
      await body(t, server, db);
    });
  }
}

/** A token (signed by the server) with the given permissions per cache pattern. */
export async function issueToken(server: TestServer, caches: Record<string, string[]>): Promise<string> {
  const res = await server.fetch('/_api/v1/tokens', {
    method: 'POST',
    token: server.adminToken,
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ sub: 'tester', validity: '1h', caches }),
  });
  if (res.status !== 201) throw new Error(`issuing a token: ${res.status} ${await res.text()}`);
  return ((await res.json()) as { token: string }).token;
}

export function clientFor(server: TestServer, token = server.adminToken): LoftClient {
  return new LoftClient({ endpoint: server.url, token, retries: 0 });
}

export function metaOf(nar: Buffer, storePath = randomStorePath().path): NarMeta {
  return { storePath, narHash: sha256Nix32(nar), narSize: nar.length, references: [], sigs: [] };
}

/** The body of `POST /_api/v1/nar` for `nar` cut into `chunks`. */
export function commitBody(cache: string, nar: Buffer, chunks: string[], patch: Record<string, unknown> = {}) {
  const m = metaOf(nar);
  return { cache, store_path: m.storePath, nar_hash: m.narHash, nar_size: m.narSize, references: [], sigs: [], chunks, ...patch };
}

export const sha256Hex = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

/** Chunks of `nar` as the server cuts them (its default parameters). */
export function chunksOf(nar: Buffer): { hash: string; data: Buffer }[] {
  return chunkBuffer(nar).map((data) => ({ hash: sha256Hex(data), data }));
}

/** A raw chunk-upload body; each record may lie about its hash or size, or carry any frame. */
export function recordsBody(records: { hash: string; size: number; frame?: Buffer; data?: Buffer }[]): Buffer<ArrayBuffer> {
  return Buffer.concat(
    records.flatMap((r) => {
      const frame = r.frame ?? zstdCompressSync(r.data!, 3);
      return [chunkRecordHeader(r.hash, r.size, frame.length), frame];
    }),
  );
}

export async function postJson(server: TestServer, path: string, body: unknown, token?: string): Promise<Response> {
  return server.fetch(path, {
    method: 'POST',
    token,
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
}

export async function postChunks(server: TestServer, cache: string, body: Uint8Array<ArrayBuffer>, token?: string): Promise<Response> {
  return server.fetch(`/_api/v1/chunks?cache=${cache}`, {
    method: 'POST',
    token,
    headers: { 'content-type': 'application/x-loft-chunks' },
    body,
  });
}

export async function countRows(server: TestServer, table: 'chunks' | 'nars' | 'nar_chunks' | 'objects' | 'chunk_stagings' | 'packs') {
  const row = await server.services.kysely
    .selectFrom(table)
    .select(({ fn }) => fn.countAll().as('n'))
    .executeTakeFirstOrThrow();
  return Number(row.n);
}

/** Storage objects holding chunks (pack files). */
export async function countPackObjects(server: TestServer): Promise<number> {
  let n = 0;
  for await (const _ of server.services.blobs.list('packs/')) n++;
  return n;
}

/** One worker pool for a whole test file (starting workers per push would dominate small tests). */
export function sharedPool(): ChunkWorkerPool {
  const pool = new ChunkWorkerPool({ threads: 2 });
  process.once('beforeExit', () => void pool.close());
  return pool;
}

export async function* piecesOf(buf: Buffer, size = 64 * 1024): AsyncGenerator<Buffer> {
  for (let i = 0; i < buf.length; i += size) yield buf.subarray(i, i + size);
}
