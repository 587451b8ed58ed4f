import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, it } from 'node:test';
import { authenticate } from '../../../src/token/authenticate.ts';
import { TokenAuthority } from '../../../src/token/authority.ts';
import { TokenError } from '../../../src/token/errors.ts';
import { CachedRevocationList } from '../../../src/token/revocation.ts';
import { SECRET } from './helpers.ts';

/** A loader that counts calls and serves (or fails with) whatever the test sets. */
function counting(initial: string[] = []) {
  const state = { calls: 0, revoked: new Set(initial), failWith: undefined as Error | undefined };
  const loader = async () => {
    state.calls++;
    if (state.failWith) throw state.failWith;
    return new Set(state.revoked);
  };
  return { state, loader };
}

function fakeClock() {
  const clock = { t: 1_000_000, now: () => clock.t };
  return clock;
}

describe('CachedRevocationList', () => {
  it('loads once per ttl (real time, small ttl)', async () => {
    const { state, loader } = counting(['gone']);
    const list = new CachedRevocationList(loader, { ttlMs: 100 });
    assert.equal(await list.isRevoked('gone'), true);
    assert.equal(await list.isRevoked('alive'), false);
    assert.equal(state.calls, 1);
    state.revoked.add('alive');
    await sleep(120);
    assert.equal(await list.isRevoked('alive'), true);
    assert.equal(state.calls, 2);
  });

  it('sees a new revocation only after the ttl (fake clock)', async () => {
    const { state, loader } = counting();
    const clock = fakeClock();
    const list = new CachedRevocationList(loader, { ttlMs: 5000, now: clock.now });
    assert.equal(await list.isRevoked('j1'), false);
    state.revoked.add('j1');
    clock.t += 4999;
    assert.equal(await list.isRevoked('j1'), false);
    clock.t += 1;
    assert.equal(await list.isRevoked('j1'), true);
    assert.equal(state.calls, 2);
  });

  it('shares one in-flight load between concurrent callers', async () => {
    let calls = 0;
    let release!: (s: Set<string>) => void;
    const list = new CachedRevocationList(() => {
      calls++;
      return new Promise((resolve) => (release = resolve));
    });
    const pending = Array.from({ length: 10 }, (_, i) => list.isRevoked(`j${i}`));
    await sleep(5);
    release(new Set(['j3']));
    assert.deepEqual(await Promise.all(pending), pending.map((_, i) => i === 3));
    assert.equal(calls, 1);
  });

  it('keeps serving the last good set for up to 60 s while loads fail, retrying once per ttl, then throws', async () => {
    const { state, loader } = counting(['gone']);
    const clock = fakeClock();
    const list = new CachedRevocationList(loader, { ttlMs: 5000, now: clock.now });
    await list.isRevoked('gone');
    state.failWith = new Error('db down');

    clock.t += 5000;
    assert.equal(await list.isRevoked('gone'), true);
    assert.equal(state.calls, 2);
    clock.t += 1000;
    assert.equal(await list.isRevoked('gone'), true);
    assert.equal(state.calls, 2, 'no retry before the ttl has passed since the failed attempt');

    clock.t = 1_000_000 + 60_000;
    assert.equal(await list.isRevoked('gone'), true, 'exactly 60 s old is still served');
    clock.t += 1;
    await assert.rejects(list.isRevoked('gone'), (e: unknown) => {
      assert.ok(e instanceof Error && !(e instanceof TokenError));
      assert.equal(e.message, 'revocation list unavailable');
      assert.equal((e.cause as Error).message, 'db down');
      return true;
    });

    state.failWith = undefined;
    clock.t += 5000;
    assert.equal(await list.isRevoked('gone'), true, 'recovers once the store is back');
  });

  it('throws when the very first load fails, and does not wedge on a loader that throws synchronously', async () => {
    let calls = 0;
    const list = new CachedRevocationList(() => {
      calls++;
      throw new Error('boom');
    });
    await assert.rejects(list.isRevoked('x'), /revocation list unavailable/);
    await assert.rejects(list.isRevoked('x'), /revocation list unavailable/);
    assert.equal(calls, 2);
  });
});

describe('authenticate', () => {
  const setup = async () => {
    const authority = await TokenAuthority.create({ algorithm: 'HS256', hs256Secret: SECRET });
    const issued = await authority.issue({ sub: 'ci', validitySeconds: 60, caches: { main: ['push'] } });
    return { authority, issued, revocations: { isRevoked: async () => false } };
  };

  it('is anonymous without a header', async () => {
    const { authority, revocations } = await setup();
    const p = await authenticate(authority, revocations, undefined);
    assert.ok(p.isAnonymous);
  });

  it('accepts a valid token as Bearer or as the Basic password', async () => {
    const { authority, revocations, issued } = await setup();
    assert.equal((await authenticate(authority, revocations, `Bearer ${issued.token}`)).jti, issued.jti);
    const basic = `Basic ${Buffer.from(`nix:${issued.token}`).toString('base64')}`;
    assert.ok((await authenticate(authority, revocations, basic)).can('main', 'push'));
  });

  it('rejects a revoked token', async () => {
    const { authority, issued } = await setup();
    const revocations = { isRevoked: async (jti: string) => jti === issued.jti };
    await assert.rejects(authenticate(authority, revocations, `Bearer ${issued.token}`), (e: unknown) => e instanceof TokenError && e.message === 'token has been revoked');
  });

  it('rejects malformed headers and bad tokens with TokenError', async () => {
    const { authority, revocations } = await setup();
    await assert.rejects(authenticate(authority, revocations, 'Bearer'), TokenError);
    await assert.rejects(authenticate(authority, revocations, 'Bearer x.y.z'), TokenError);
  });

  it('lets a revocation store outage through as a non-TokenError', async () => {
    const { authority, issued } = await setup();
    const down = new CachedRevocationList(async () => {
      throw new Error('db down');
    });
    await assert.rejects(authenticate(authority, down, `Bearer ${issued.token}`), (e: unknown) => !(e instanceof TokenError) && /unavailable/.test(String(e)));
  });
});
