// The pure planning pieces of `loft push`, on fabricated path infos.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { PathBatcher } from '../../../src/cli/push/batcher.ts';
import { parsePathInfoJson } from '../../../src/cli/push/closure.ts';
import { filterUpstream, MISSING_PATHS_BATCH, PushSchedule, splitBatches } from '../../../src/cli/push/plan.ts';
import type { PathInfo } from '../../../src/cli/push/types.ts';
import { isStorePathName } from '../../../src/cli/push/watcher.ts';

const H = 'abcdfghijklmnpqrsvwxyz0123456789';
const sp = (name: string, i = 0) => `/nix/store/${H.slice(i) + H.slice(0, i)}-${name}`;

function info(path: string, references: string[] = [], sigs: string[] = []): PathInfo {
  return { path, narHash: `sha256-${'A'.repeat(43)}=`, narSize: 100, references, sigs };
}

/** Drains a schedule one path at a time; returns the start order. */
function drain(s: PushSchedule): string[] {
  const order: string[] = [];
  for (let p = s.next(); p; p = s.next()) {
    order.push(p.path);
    s.complete(p.path);
  }
  return order;
}

test('the upstream filter drops paths signed by an upstream key name', () => {
  const a = info(sp('a', 1), [], ['cache.nixos.org-1:c2lnbmF0dXJl']);
  const b = info(sp('b', 2), [], ['my-key:c2lnbmF0dXJl']);
  const c = info(sp('c', 3));
  const { candidates, upstream } = filterUpstream([a, b, c], ['cache.nixos.org-1']);
  assert.deepEqual(upstream.map((i) => i.path), [a.path]);
  assert.deepEqual(candidates.map((i) => i.path), [b.path, c.path]);
  // A key name must match whole, not as a prefix.
  assert.equal(filterUpstream([a], ['cache.nixos.org']).upstream.length, 0);
});

test('references are pushed before the paths that use them (diamond)', () => {
  const bottom = sp('bottom', 1);
  const left = sp('left', 2);
  const right = sp('right', 3);
  const top = sp('top', 4);
  const s = new PushSchedule([
    info(top, [left, right]),
    info(left, [bottom]),
    info(right, [bottom]),
    info(bottom),
  ]);
  assert.equal(s.next()?.path, bottom);
  assert.equal(s.next(), undefined, 'nothing else is ready while bottom is in flight');
  s.complete(bottom);
  const both = [s.next()?.path, s.next()?.path].sort();
  assert.deepEqual(both, [left, right].sort(), 'left and right run in parallel');
  s.complete(left);
  assert.equal(s.next(), undefined, 'top waits for right too');
  s.complete(right);
  assert.equal(s.next()?.path, top);
  s.complete(top);
  assert.equal(s.unfinished, 0);
});

test('self-references and references outside the pushed set do not wait', () => {
  const self = sp('self', 1);
  const present = sp('already-in-cache', 2);
  const s = new PushSchedule([info(self, [self, present])]);
  assert.deepEqual(drain(s), [self]);
});

test('a long chain comes out in dependency order, whatever the input order', () => {
  const paths = Array.from({ length: 30 }, (_, i) => sp(`p${i}`, i));
  const infos = paths.map((p, i) => info(p, i > 0 ? [paths[i - 1]] : []));
  assert.deepEqual(drain(new PushSchedule([...infos].reverse())), paths);
});

test('a failed path blocks everything that depends on it, transitively, and nothing else', () => {
  const base = sp('base', 1);
  const mid = sp('mid', 2);
  const top = sp('top', 3);
  const other = sp('other', 4);
  const s = new PushSchedule([info(base), info(mid, [base]), info(top, [mid, other]), info(other)]);
  const first = [s.next()!.path, s.next()!.path].sort();
  assert.deepEqual(first, [base, other].sort());
  assert.deepEqual(s.fail(base).sort(), [mid, top].sort());
  s.complete(other);
  assert.equal(s.next(), undefined, 'top was blocked, not made ready by other');
  assert.equal(s.unfinished, 0);
});

test('a reference cycle is refused instead of hanging', () => {
  const a = sp('a', 1);
  const b = sp('b', 2);
  assert.throws(() => new PushSchedule([info(a, [b]), info(b, [a])]), /reference cycle/);
});

test('missing-path queries are split into batches of at most the limit', () => {
  assert.equal(MISSING_PATHS_BATCH, 10_000);
  const hashes = Array.from({ length: 25_001 }, (_, i) => i);
  const batches = splitBatches(hashes, MISSING_PATHS_BATCH);
  assert.deepEqual(batches.map((b) => b.length), [10_000, 10_000, 5_001]);
  assert.deepEqual(batches.flat(), hashes);
  assert.deepEqual(splitBatches([], 10_000), []);
});

test('nix path-info --json: the Nix 2.8 array and the newer keyed object both parse', () => {
  const p = sp('hello', 1);
  const dep = sp('glibc', 2);
  const old = [
    {
      path: p,
      narHash: 'sha256-NDIG5QEp906FavjwSaQFvOR1T8eSVKbEJE3a23FcB00=',
      narSize: 110736,
      references: [dep],
      deriver: sp('hello.drv', 3),
      registrationTime: 1,
      signatures: ['k-1:c2ln'],
      ca: 'fixed:r:sha256:1b8m03r63zqhnjf7l5wnldhh7c134ap5vpj0850ymkq1iyzicy5s',
    },
  ];
  const [a] = parsePathInfoJson(old);
  assert.deepEqual(a, {
    path: p,
    narHash: old[0].narHash,
    narSize: 110736,
    references: [dep],
    deriver: old[0].deriver,
    sigs: ['k-1:c2ln'],
    ca: old[0].ca,
  });
  const [b] = parsePathInfoJson({
    [p]: { narHash: 'sha256:1b8m03r63zqhnjf7l5wnldhh7c134ap5vpj0850ymkq1iyzicy5s', narSize: 5, references: [], deriver: null, signatures: [] },
  });
  assert.deepEqual(b, { path: p, narHash: 'sha256:1b8m03r63zqhnjf7l5wnldhh7c134ap5vpj0850ymkq1iyzicy5s', narSize: 5, references: [], deriver: undefined, sigs: [], ca: undefined });
  assert.throws(() => parsePathInfoJson({ [p]: null }), /not a valid store path/);
});

test('watch-store ignores derivations, locks, checksums and temporary names', () => {
  assert.equal(isStorePathName(`${H}-hello-2.12`), true);
  for (const name of [`${H}-hello.drv`, `${H}-hello.lock`, `${H}-hello.chksum`, '.links', 'tmp-1234-0', `add-1-2`, `${H}`]) {
    assert.equal(isStorePathName(name), false, name);
  }
});

test('the batcher flushes after a quiet period, or at the deadline under a steady stream', async () => {
  const batches: string[][] = [];
  const quiet = new PathBatcher((b) => batches.push(b), 40, 1000);
  quiet.add('a');
  quiet.add('b');
  quiet.add('a');
  await sleep(80);
  assert.deepEqual(batches, [['a', 'b']]);

  batches.length = 0;
  const steady = new PathBatcher((b) => batches.push(b), 60, 150);
  for (let i = 0; i < 8; i++) {
    steady.add(`p${i}`);
    await sleep(30);
  }
  assert.ok(batches.length >= 1 && batches[0].length < 8, `deadline flushed early: ${JSON.stringify(batches)}`);
  assert.deepEqual(steady.close().length + batches.flat().length, 8);
});
