// Shared by the reliability suite (test/reliability/*.test.ts, fast, part of `npm test`) and the soak
// (test/soak/*.soak.ts, `npm run soak`): a `loft serve` child process that can be killed and restarted
// on the same port and data, fresh store paths made by the real nix, and the black-box checks: what
// is visible is complete (pulled and verified by nix), and after a GC pass nothing is left in storage.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { TestContext } from 'node:test';
import { freshDatabase } from '../helpers/databases.ts';
import { postgresUnavailable, nixUnavailable, skipUnless } from '../helpers/env.ts';
import { sha256Nix32 } from '../helpers/nar.ts';
import { nix, nixEnv, writeNetrc } from '../helpers/nix.ts';
import { freePort, loftEnv, spawnLoft, waitHealthy, type LoftProcess } from '../helpers/processes.ts';
import { startS3rver } from '../helpers/s3rver.ts';
import { listStorageObjects } from '../helpers/storage-objects.ts';
import { makeTempDir } from '../helpers/tmp.ts';
import type { StorageConfig } from '../../src/storage/index.ts';

export type Setup = 'sqlite+local' | 'postgres+s3';
export const SETUPS: Setup[] = ['sqlite+local', 'postgres+s3'];

/** Skips (loudly; fails under CI) when a setup's prerequisites are missing. */
export async function setupAvailable(t: TestContext, setup: Setup, needsNix = true): Promise<boolean> {
  if (needsNix && !skipUnless(t, nixUnavailable())) return false;
  return setup !== 'postgres+s3' || skipUnless(t, await postgresUnavailable());
}

export interface Subject {
  readonly url: string;
  readonly cache: string;
  readonly adminToken: string;
  readonly publicKey: string;
  readonly storage: StorageConfig;
  readonly netrc: string;
  readonly dir: string;
  /** The running process (replaced by restart()). */
  proc(): LoftProcess;
  /** SIGKILL, no goodbye. */
  kill9(): Promise<void>;
  /** Starts it again on the same port, database and storage; resolves once healthy. */
  restart(): Promise<void>;
  fetch(p: string, init?: RequestInit): Promise<Response>;
}

/**
 * `loft serve` (monolithic) as a child process on `setup`, with a public cache `cache`, GC grace 0
 * and no background GC (the tests run it when they mean to); from src/ under tsx, or the compiled
 * build with `dist`. Torn down after the test.
 */
export async function startSubject(
  t: TestContext,
  setup: Setup,
  o: { cache?: string; toml?: string; storage?: StorageConfig; env?: NodeJS.ProcessEnv; dist?: boolean } = {},
): Promise<Subject> {
  const tmp = await makeTempDir('loft-rel-');
  const cleanups: (() => Promise<void>)[] = [() => tmp.cleanup()];
  t.after(async () => {
    for (const c of cleanups.reverse()) await c().catch(() => {});
  });
  const adminToken = `root-${randomBytes(12).toString('hex')}`;
  let databaseUrl = `sqlite:${path.join(tmp.path, 'loft.db')}`;
  let storage: StorageConfig = o.storage ?? { type: 'local', path: path.join(tmp.path, 'storage') };
  if (setup === 'postgres+s3') {
    const db = await freshDatabase('postgres', tmp.path);
    cleanups.push(() => db.drop());
    databaseUrl = db.url;
    if (!o.storage) {
      const s3 = await startS3rver();
      cleanups.push(() => s3.stop());
      storage = s3.config;
    }
  }
  const config = path.join(tmp.path, 'loft.toml');
  await writeFile(config, `[gc]\ninterval_seconds = 0\nstaging_grace_seconds = 0\n${o.toml ?? ''}`);
  const env = {
    ...loftEnv({
      databaseUrl,
      dataDir: tmp.path,
      adminToken,
      tokenSecret: randomBytes(32).toString('base64'),
      s3: storage.type === 's3' ? storage : undefined,
    }),
    ...(storage.type === 'local' ? { LOFT_STORAGE_PATH: storage.path } : {}),
    LOFT_LOG_LEVEL: 'warn',
    ...o.env,
  };
  const port = await freePort();
  const spawn = () => spawnLoft({ mode: 'monolithic', env, port, config, dist: o.dist });
  let proc = spawn();
  cleanups.push(() => proc.kill('SIGKILL').then(() => {}));
  await waitHealthy(proc, 60_000);
  const url = proc.url;
  const cache = o.cache ?? 'rel';
  const created = await fetch(`${url}/_api/v1/cache-config/${cache}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' },
    body: JSON.stringify({ is_public: true }),
  });
  const text = await created.text();
  assert.equal(created.status, 201, text);
  const netrc = await writeNetrc(tmp.path, url, adminToken);
  return {
    url,
    cache,
    adminToken,
    publicKey: (JSON.parse(text) as { public_key: string }).public_key,
    storage,
    netrc,
    dir: tmp.path,
    proc: () => proc,
    async kill9() {
      await proc.kill('SIGKILL');
    },
    async restart() {
      await proc.kill('SIGKILL');
      proc = spawn();
      await waitHealthy(proc, 60_000);
    },
    fetch: (p, init = {}) => {
      const headers = new Headers(init.headers);
      headers.set('authorization', `Bearer ${adminToken}`);
      return fetch(url + p, { ...init, headers });
    },
  };
}

/**
 * `count` new store paths in /nix/store, each a directory holding `bytes` of fresh random data (so
 * every push stores new chunks), added by the real `nix-store --add`.
 */
export async function freshStorePaths(dir: string, count: number, bytes: number): Promise<string[]> {
  const out: string[] = [];
  for (let i = 0; i < count; i++) {
    const src = path.join(dir, `src-${i}-${randomBytes(4).toString('hex')}`);
    await mkdir(src, { recursive: true });
    await writeFile(path.join(src, 'data'), randomBytes(bytes));
    await writeFile(path.join(src, 'README'), `reliability path ${i}\n`);
    out.push(await nix(['--add', src], nixEnv(dir), 'nix-store'));
  }
  return out;
}

/** `nix copy --to` the subject's cache. Rejects when nix reports a failure. */
export function nixCopyTo(s: Subject, paths: string[], tag: string): Promise<string> {
  return nix(['copy', '--to', `${s.url}/${s.cache}?compression=zstd`, '--option', 'netrc-file', s.netrc, ...paths], nixEnv(path.join(s.dir, tag)));
}

const hashOf = (storePath: string) => path.basename(storePath).slice(0, 32);

/**
 * What a client sees of `storePath` right now: absent (404), or complete — its narinfo names a NAR
 * that downloads in full with the advertised NarHash. Anything else (a 5xx, a short or wrong NAR) fails.
 */
export async function visibleAndIntact(s: Subject, storePath: string): Promise<boolean> {
  const info = await fetch(`${s.url}/${s.cache}/${hashOf(storePath)}.narinfo`);
  const text = await info.text();
  if (info.status === 404) return false;
  assert.equal(info.status, 200, `narinfo of ${storePath}: ${info.status} ${text}`);
  const narHash = /^NarHash: sha256:([0-9a-z]{52})$/m.exec(text)?.[1];
  const narSize = Number(/^NarSize: (\d+)$/m.exec(text)?.[1]);
  assert.ok(narHash, `narinfo without a NarHash: ${text}`);
  const nar = await fetch(`${s.url}/${s.cache}/nar/${narHash}.nar`);
  assert.equal(nar.status, 200, `NAR of a visible path ${storePath}: ${nar.status}`);
  const body = Buffer.from(await nar.arrayBuffer());
  assert.equal(body.length, narSize, `NAR of ${storePath} is ${body.length} bytes, narinfo says ${narSize}`);
  assert.equal(sha256Nix32(body), `sha256:${narHash}`, `NAR of ${storePath} does not match its NarHash`);
  return true;
}

/** Pulls `paths` from the cache into a fresh store with signatures required, and has nix verify them. */
export async function pullAndVerify(s: Subject, paths: string[], tag: string): Promise<void> {
  if (paths.length === 0) return;
  const store = path.join(s.dir, `store-${tag}`);
  const env = nixEnv(path.join(s.dir, `pull-${tag}`));
  await nix(
    ['--store', store, '-r', ...paths, '--option', 'substituters', `${s.url}/${s.cache}`, '--option', 'trusted-public-keys', s.publicKey, '--option', 'require-sigs', 'true'],
    env,
    'nix-store',
  );
  await nix(['store', 'verify', '--store', store, '--trusted-public-keys', s.publicKey, ...paths], env);
}

/** Runs one GC pass now (the subject's grace is 0) and returns its report. */
export async function collectGarbage(s: Subject): Promise<Record<string, number>> {
  const res = await s.fetch('/_api/v1/gc', { method: 'POST' });
  const text = await res.text();
  assert.equal(res.status, 200, `POST /_api/v1/gc: ${text}`);
  return JSON.parse(text) as Record<string, number>;
}

/**
 * Leftovers are swept: with every cache destroyed, two GC passes (grace 0) must leave storage empty —
 * whatever the storage layout, anything still there is an object nothing references. Two, because
 * a pass only retires the packs it empties (a download that looked up their chunks before may still
 * be reading them) and the next pass deletes them; a third pass must find nothing left to do.
 */
export async function destroyAllAndExpectEmptyStorage(s: Subject): Promise<void> {
  const destroyed = await s.fetch(`/_api/v1/cache-config/${s.cache}`, { method: 'DELETE' });
  assert.ok(destroyed.status < 300, `destroying the cache: ${destroyed.status} ${await destroyed.text()}`);
  const reports = [await collectGarbage(s), await collectGarbage(s)];
  const left = await listStorageObjects(s.storage);
  assert.deepEqual(left, [], `storage still holds objects after destroying everything and two GC passes (${JSON.stringify(reports)})`);
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** The p-th percentile (0–100) of a list of numbers. */
export function percentile(values: number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}
