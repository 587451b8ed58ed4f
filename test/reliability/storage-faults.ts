// Storage faults: S3 behind a fault-injecting proxy (5xx, latency, resets, cut bodies) and a full local
// disk (a small tmpfs). Pushes succeed through retries or fail with a clear error; reads return the
// exact bytes or fail (never a complete-looking wrong body); nothing corrupt is stored; the server
// recovers by itself when the fault ends; and afterwards a GC pass leaves storage empty once everything
// is deleted.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import type { TestContext } from 'node:test';
import { promisify } from 'node:util';
import { startFaultProxy, type Fault } from '../helpers/fault-proxy.ts';
import { makeNar, nix32Of, randomStorePath, uploadPathMeta } from '../helpers/nar.ts';
import { startS3rver } from '../helpers/s3rver.ts';
import { makeTempDir } from '../helpers/tmp.ts';
import { destroyAllAndExpectEmptyStorage, startSubject, visibleAndIntact, type Subject } from './support.ts';

const exec = promisify(execFile);

export interface Pushed {
  storePath: string;
  nar: Buffer;
}

async function pushFresh(s: Subject, bytes: number, nar?: Buffer, storePath?: string): Promise<{ status: number; text: string; pushed: Pushed }> {
  const n = nar ?? (await makeNar({ data: randomBytes(bytes), README: 'storage faults\n' }));
  const sp = storePath ?? randomStorePath('storage-fault').path;
  const res = await s.fetch('/_api/v1/upload-path', {
    method: 'PUT',
    headers: { 'content-type': 'application/octet-stream', 'x-loft-nar-info': JSON.stringify(uploadPathMeta(s.cache, sp, n)) },
    body: new Uint8Array(n),
    signal: AbortSignal.timeout(120_000),
  });
  return { status: res.status, text: await res.text(), pushed: { storePath: sp, nar: n } };
}

/** A failed request must say what happened: a JSON error whose message is not the bare 500's. */
function assertClearError(s: Subject, status: number, text: string, what: string): void {
  assert.ok(status >= 500, `${what}: ${status} ${text}`);
  const body = JSON.parse(text) as { message?: string };
  const log = s.proc().output().split('\n').slice(-5).join('\n');
  assert.ok(body.message && body.message !== 'internal server error', `${what} failed without saying why: ${status} ${text}\nserver log:\n${log}`);
}

/** GET of a NAR: the exact bytes, or a failure (an error status, or a body cut short) — never other bytes. */
async function readFailsClosed(s: Subject, p: Pushed): Promise<string> {
  let res: Response;
  try {
    res = await fetch(`${s.url}/${s.cache}/nar/${nix32Of(p.nar)}.nar`, { signal: AbortSignal.timeout(120_000) });
  } catch {
    return 'no answer';
  }
  let body: Buffer;
  try {
    body = Buffer.from(await res.arrayBuffer());
  } catch {
    return `${res.status}, body cut short`; // the client knows the body is incomplete
  }
  if (res.status !== 200) return `${res.status}`;
  assert.equal(createHash('sha256').update(body).digest('hex'), createHash('sha256').update(p.nar).digest('hex'), 'a NAR was served complete with the wrong bytes');
  return 'ok';
}

export interface S3FaultFigure {
  fault: string;
  push: string;
  read: string;
  proxyRequests: number;
  injected: number;
}

export const S3_FAULTS: [string, Fault][] = [
  ['every S3 request answered 503', { kind: 'status', status: 503 }],
  ['30% of S3 requests answered 500', { kind: 'status', status: 500, share: 0.3 }],
  ['400 ms added to every S3 request', { kind: 'latency', ms: 400 }],
  ['every S3 connection reset', { kind: 'reset' }],
  ['30% of S3 connections reset', { kind: 'reset', share: 0.3 }],
  ['every S3 response body cut halfway', { kind: 'truncate' }],
  ['30% of S3 response bodies cut halfway', { kind: 'truncate', share: 0.3 }],
];

export async function s3FaultScenario(t: TestContext, faults: [string, Fault][], narBytes: number): Promise<S3FaultFigure[]> {
  const s3 = await startS3rver();
  t.after(() => s3.stop());
  const proxy = await startFaultProxy(s3.endpoint);
  t.after(() => proxy.close());
  const s = await startSubject(t, 'postgres+s3', { storage: { ...s3.config, endpoint: proxy.url } });
  const first = await pushFresh(s, narBytes);
  assert.equal(first.status, 200, first.text);
  const stored: Pushed[] = [first.pushed];
  const figures: S3FaultFigure[] = [];
  for (const [name, fault] of faults) {
    proxy.set(fault);
    const during = await pushFresh(s, narBytes);
    if (during.status !== 200) assertClearError(s, during.status, during.text, `a push during "${name}"`);
    const read = await readFailsClosed(s, stored[0]);
    if (fault.kind === 'latency') assert.equal(read, 'ok', 'a slow S3 only slows reads down');
    const counts = proxy.counts();
    proxy.set({ kind: 'none' });
    // Recovered: the path of a failed push is absent (or complete), and pushing it again works.
    const visible = await visibleAndIntact(s, during.pushed.storePath);
    if (during.status === 200) assert.ok(visible, `an acknowledged push during "${name}" is not served`);
    else {
      const again = await pushFresh(s, narBytes, during.pushed.nar, during.pushed.storePath);
      assert.equal(again.status, 200, `pushing again after "${name}" ended: ${again.text}`);
    }
    stored.push(during.pushed);
    for (const p of stored) assert.ok(await visibleAndIntact(s, p.storePath), `${p.storePath} after "${name}"`);
    figures.push({ fault: name, push: during.status === 200 ? '200' : `${during.status} ${JSON.parse(during.text).message}`, read, proxyRequests: counts.requests, injected: counts.injected });
  }
  await destroyAllAndExpectEmptyStorage(s);
  return figures;
}

/** Why a tmpfs cannot be mounted here, or undefined when it can. */
export function tmpfsUnavailable(): string | undefined {
  return process.getuid?.() === 0 ? undefined : 'mounting a tmpfs (a small disk to fill) needs root';
}

export interface DiskFullFigure {
  pushedBeforeFull: number;
  refusal: string;
  readsWhileFull: string;
}

/** Local storage on a 20 MiB tmpfs: fill it with pushes, check the refusal and reads, grow it, push again. */
export async function diskFullScenario(t: TestContext): Promise<DiskFullFigure> {
  const tmp = await makeTempDir('loft-tmpfs-');
  const mnt = path.join(tmp.path, 'storage');
  await mkdir(mnt);
  await exec('mount', ['-t', 'tmpfs', '-o', 'size=20m', 'tmpfs', mnt]);
  t.after(async () => {
    await exec('umount', ['-l', mnt]).catch(() => {});
    await tmp.cleanup();
  });
  const s = await startSubject(t, 'sqlite+local', { storage: { type: 'local', path: mnt } });
  const stored: Pushed[] = [];
  let refused: { status: number; text: string; pushed: Pushed } | undefined;
  for (let i = 0; i < 20 && !refused; i++) {
    const r = await pushFresh(s, 3 * 1024 * 1024);
    if (r.status === 200) stored.push(r.pushed);
    else refused = r;
  }
  assert.ok(refused, 'a 20 MiB disk never filled up');
  assert.ok(stored.length >= 2, `only ${stored.length} pushes fit`);
  assertClearError(s, refused.status, refused.text, 'a push to a full disk');
  assert.equal(await visibleAndIntact(s, refused.pushed.storePath), false, 'a push refused for lack of space is not visible');
  const reads: string[] = [];
  for (const p of stored) reads.push(await readFailsClosed(s, p));
  assert.ok(reads.every((r) => r === 'ok'), `reads while the disk is full: ${reads.join(', ')}`);
  // The fault ends: the disk grows. The same push now works, and everything is intact.
  await exec('mount', ['-o', 'remount,size=200m', mnt]);
  const again = await pushFresh(s, 0, refused.pushed.nar, refused.pushed.storePath);
  assert.equal(again.status, 200, `pushing again once there is room: ${again.text}`);
  for (const p of [...stored, again.pushed]) assert.ok(await visibleAndIntact(s, p.storePath));
  await destroyAllAndExpectEmptyStorage(s);
  return { pushedBeforeFull: stored.length, refusal: `${refused.status} ${JSON.parse(refused.text).message}`, readsWhileFull: reads.join(', ') };
}
