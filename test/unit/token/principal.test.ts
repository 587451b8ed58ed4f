import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { TokenAuthority } from '../../../src/token/authority.ts';
import type { Permission } from '../../../src/token/permissions.ts';
import { Principal } from '../../../src/token/principal.ts';
import { LOFT, SECRET } from './helpers.ts';

/** Patterns chosen so every resolution rule decides at least one name below. */
const GRANTS: Record<string, Permission[]> = {
  '*': ['push'],
  'team-*': ['pull'],
  'team-ci': ['pull', 'push', 'delete'],
  '*-ci': ['configure_cache'],
  'team-blocked': [],
  'x*': ['pull'],
  '*y': ['push'],
};

/** cache name → expected permissions, with the rule that decides it. */
const EXPECTED: Array<[string, Permission[]]> = [
  ['team-ci', ['pull', 'push', 'delete']], // exact key beats every wildcard
  ['team-a', ['pull']], // team-* (5 literals) beats * (0); no merging with *'s push
  ['team-x-ci', ['pull']], // team-* (5) beats *-ci (3)
  ['foo-ci', ['configure_cache']], // *-ci beats *
  ['other', ['push']], // only * matches
  ['xy', ['push']], // x* and *y tie at 1 literal: '*y' < 'x*'
  ['team-blocked', []], // an exact empty list denies despite team-* and *
];

function permutations<T>(items: T[]): T[][] {
  if (items.length <= 1) return [items];
  return items.flatMap((item, i) => permutations([...items.slice(0, i), ...items.slice(i + 1)]).map((rest) => [item, ...rest]));
}

const sorted = (set: ReadonlySet<Permission>) => [...set].sort();

describe('permission resolution', () => {
  let authority: TokenAuthority;
  before(async () => {
    authority = await TokenAuthority.create({ algorithm: 'HS256', hs256Secret: SECRET });
  });

  it('follows exact, then most specific wildcard, then lexicographic order, without merging', async () => {
    const { token } = await authority.issue({ sub: 'alice', validitySeconds: 60, caches: GRANTS });
    const principal = await authority.verify(token);
    for (const [name, perms] of EXPECTED) assert.deepEqual(sorted(principal.permissionsFor(name)), [...perms].sort(), name);
  });

  it('is stable under every order of the claim keys', async () => {
    // 7! = 5040 orders is overkill; permuting the five wildcards (120 tokens) covers every tie and ranking.
    const wildcards = Object.keys(GRANTS).filter((p) => p.includes('*'));
    const exact = Object.keys(GRANTS).filter((p) => !p.includes('*'));
    const seen = new Set<string>();
    for (const order of permutations(wildcards)) {
      const keys = [...order.slice(0, 2), ...exact, ...order.slice(2)];
      const caches = Object.fromEntries(keys.map((k) => [k, GRANTS[k]]));
      const { token } = await authority.issue({ sub: 'alice', validitySeconds: 60, caches });
      const payload = JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString());
      seen.add(Object.keys(payload[LOFT].caches).join(','));
      const principal = await authority.verify(token);
      for (const [name, perms] of EXPECTED) assert.deepEqual(sorted(principal.permissionsFor(name)), [...perms].sort(), name);
    }
    assert.equal(seen.size, 120, 'the tokens really carried different key orders');
  });

  it('prefers an exact key over a wildcard of equal specificity', () => {
    const p = principal({ 'abc*': ['push'], abc: ['pull'] });
    assert.deepEqual(sorted(p.permissionsFor('abc')), ['pull']);
    assert.deepEqual(sorted(p.permissionsFor('abcd')), ['push']);
  });

  it('answers can() and hasAnyOn() from the same single decision', () => {
    const p = principal({ 'team-*': ['pull'], '*': ['push'], 'team-blocked': [] });
    assert.ok(p.can('team-a', 'pull'));
    assert.ok(!p.can('team-a', 'push'));
    assert.ok(p.can('elsewhere', 'push'));
    assert.ok(p.hasAnyOn('team-a'));
    assert.ok(!p.hasAnyOn('team-blocked'));
  });

  it('grants nothing on invalid cache names, even under *', () => {
    const p = principal({ '*': ['pull'] });
    for (const name of ['', '-x', 'a/b', 'a'.repeat(51)]) assert.equal(p.permissionsFor(name).size, 0, name);
  });

  it('treats admin as a global flag that grants no cache permissions', () => {
    const p = new Principal({ sub: 'root', jti: 'j', expiresAt: new Date(), isAdmin: true, caches: new Map() });
    assert.ok(p.isAdmin);
    assert.ok(!p.hasAnyOn('main'));
  });

  it('has an anonymous principal with no permissions', () => {
    const anon = Principal.anonymous();
    assert.equal(anon.sub, 'anonymous');
    assert.ok(anon.isAnonymous);
    assert.ok(!anon.isAdmin);
    assert.ok(!anon.hasAnyOn('main'));
    assert.ok(anon.expiresAt.getTime() > Date.now());
  });
});

function principal(caches: Record<string, Permission[]>): Principal {
  const map = new Map(Object.entries(caches).map(([k, v]) => [k, new Set(v)] as const));
  return new Principal({ sub: 'alice', jti: 'j', expiresAt: new Date(), isAdmin: false, caches: map });
}
