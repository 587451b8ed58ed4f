import { SigningKey } from '../nix/signing.ts';
import { NixFormatError } from '../nix/errors.ts';
import type { CacheKeyRow } from '../db/schema.ts';
import { badRequest, conflict } from './errors.ts';

/** What a request changes about a cache's signing keys, applied in this order. */
export interface KeyChanges {
  /** These become the only active keys; every other key is retired. */
  replaceWith?: SigningKey[];
  /** Keys that sign alongside the current ones (the start of a rotation). */
  add?: SigningKey[];
  /** Key names that stop signing (the end of a rotation). */
  retire?: string[];
}

export interface KeyPlan {
  insert: SigningKey[];
  activate: number[];
  retire: number[];
  /** The newest active key after the change (mirrored into the caches row). */
  primary: { secret: string; publicKey: string };
}

/**
 * One or more Nix secret keys (`name:base64`, as `nix key generate-secret` writes them) separated
 * by whitespace, as a key file, a mounted secret or an environment variable holds them. Errors
 * name the key and the source, never the secret.
 */
export function parseSecretKeys(text: string, source: string): SigningKey[] {
  const words = text.split(/\s+/).filter(Boolean);
  if (words.length === 0) throw badRequest(`${source}: no signing key (expected NAME:BASE64 as 'nix key generate-secret' writes it)`);
  try {
    return words.map((w) => SigningKey.parse(w));
  } catch (e) {
    if (e instanceof NixFormatError) throw badRequest(`${source}: ${e.message}`);
    throw e;
  }
}

/** `loft-main-1` → `loft-main-2`, skipping names the cache already has: clients trust keys by name. */
export function nextKeyName(name: string, taken: ReadonlySet<string>): string {
  const m = /^(.*)-(\d+)$/.exec(name);
  let [base, n] = m ? [m[1]!, Number(m[2])] : [name, 1];
  let next: string;
  do next = `${base}-${++n}`;
  while (taken.has(next));
  return next;
}

/** The keys that sign: every active one, oldest first. */
export function activeKeys(keys: CacheKeyRow[]): CacheKeyRow[] {
  return keys.filter((k) => k.state === 'active');
}

/**
 * Checks a change against the cache's keys and says which rows to write. A key already present
 * (same name, same public key) is not added twice, so re-importing the same secret is a no-op.
 */
export function planKeyChanges(cache: string, current: CacheKeyRow[], c: KeyChanges): KeyPlan {
  type Entry = { row?: CacheKeyRow; key?: SigningKey; active: boolean; order: number };
  const entries = new Map<string, Entry>();
  current.forEach((row, i) => entries.set(row.name, { row, active: row.state === 'active', order: i }));
  const ensure = (key: SigningKey) => {
    const e = entries.get(key.name);
    if (!e) {
      entries.set(key.name, { key, active: true, order: entries.size });
      return;
    }
    const existing = e.row?.public_key ?? e.key!.publicKey().toString();
    if (existing !== key.publicKey().toString()) {
      throw conflict(
        `cache '${cache}' already has a different signing key named '${key.name}': give the new key another name ` +
          `(nix key generate-secret --key-name ${nextKeyName(key.name, new Set(entries.keys()))})`,
      );
    }
    e.active = true;
  };
  if (c.replaceWith) {
    for (const k of c.replaceWith) ensure(k);
    const keep = new Set(c.replaceWith.map((k) => k.name));
    for (const [name, e] of entries) if (!keep.has(name)) e.active = false;
  }
  for (const k of c.add ?? []) ensure(k);
  for (const name of c.retire ?? []) {
    const e = entries.get(name);
    if (!e) throw badRequest(`cache '${cache}' has no signing key named '${name}' (its keys: ${[...entries.keys()].join(', ')})`);
    e.active = false;
  }
  const active = [...entries.values()].filter((e) => e.active).sort((a, b) => a.order - b.order);
  if (active.length === 0) {
    throw conflict(`cache '${cache}' would have no active signing key: add the new key before retiring the last one`);
  }
  const newest = active.at(-1)!;
  const plan: KeyPlan = {
    insert: [],
    activate: [],
    retire: [],
    primary: newest.row
      ? { secret: newest.row.secret_key, publicKey: newest.row.public_key }
      : { secret: newest.key!.toString(), publicKey: newest.key!.publicKey().toString() },
  };
  for (const e of entries.values()) {
    if (e.key) {
      if (e.active) plan.insert.push(e.key);
    } else if (e.row!.state === 'active' && !e.active) plan.retire.push(e.row!.id);
    else if (e.row!.state === 'retired' && e.active) plan.activate.push(e.row!.id);
  }
  return plan;
}
