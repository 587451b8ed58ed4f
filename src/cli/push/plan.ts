// Deciding what to push: the upstream filter, the missing-paths query, and the
// dependency order paths are committed in.
import type { LoftClient } from '../../client/http.ts';
import { parseStorePath } from '../../nix/store-path.ts';
import type { PathInfo } from './types.ts';

/** Hashes per get-missing-paths request (the server takes up to 100 000). */
export const MISSING_PATHS_BATCH = 10_000;

/** Splits a path list between paths signed by an upstream cache (already served there) and the rest. */
export function filterUpstream(infos: PathInfo[], upstreamKeyNames: string[]): { candidates: PathInfo[]; upstream: PathInfo[] } {
  const names = new Set(upstreamKeyNames);
  const candidates: PathInfo[] = [];
  const upstream: PathInfo[] = [];
  for (const info of infos) {
    const signedUpstream = info.sigs.some((sig) => names.has(sig.slice(0, sig.indexOf(':'))));
    (signedUpstream ? upstream : candidates).push(info);
  }
  return { candidates, upstream };
}

export function splitBatches<T>(items: T[], size: number): T[][] {
  const batches: T[][] = [];
  for (let i = 0; i < items.length; i += size) batches.push(items.slice(i, i + size));
  return batches;
}

/** The paths of `infos` the cache lacks, asked in requests of at most MISSING_PATHS_BATCH hashes. */
export async function queryMissing(client: LoftClient, cache: string, infos: PathInfo[], storeDir: string): Promise<Set<string>> {
  const byHash = new Map(infos.map((i) => [parseStorePath(i.path, storeDir).hash, i.path]));
  const missing = new Set<string>();
  for (const batch of splitBatches([...byHash.keys()], MISSING_PATHS_BATCH)) {
    for (const hash of await client.getMissingPaths(cache, batch)) {
      const path = byHash.get(hash);
      if (path) missing.add(path);
    }
  }
  return missing;
}

/**
 * Hands out paths so that one starts only after every reference of it that is
 * also being pushed has been committed: a narinfo is never visible before its
 * references. References outside the set (present or upstream) and
 * self-references do not wait.
 */
export class PushSchedule {
  /** Unfinished in-set references of each waiting path. */
  readonly #waitingOn = new Map<string, Set<string>>();
  /** Reverse edges: who waits on a path. */
  readonly #dependents = new Map<string, string[]>();
  readonly #infos = new Map<string, PathInfo>();
  readonly #ready: PathInfo[] = [];
  #unfinished: number;

  constructor(infos: PathInfo[]) {
    for (const info of infos) this.#infos.set(info.path, info);
    for (const info of infos) {
      const refs = new Set(info.references.filter((r) => r !== info.path && this.#infos.has(r)));
      for (const r of refs) {
        const list = this.#dependents.get(r) ?? [];
        list.push(info.path);
        this.#dependents.set(r, list);
      }
      if (refs.size === 0) this.#ready.push(info);
      else this.#waitingOn.set(info.path, refs);
    }
    this.#unfinished = this.#infos.size;
    this.#checkAcyclic();
  }

  /** A path whose references are all committed, or undefined if none is ready now. */
  next(): PathInfo | undefined {
    return this.#ready.shift();
  }

  /** Paths handed out or waiting, not yet completed or failed. */
  get unfinished(): number {
    return this.#unfinished;
  }

  complete(path: string): void {
    this.#unfinished--;
    for (const d of this.#dependents.get(path) ?? []) {
      const refs = this.#waitingOn.get(d);
      if (!refs) continue;
      refs.delete(path);
      if (refs.size === 0) {
        this.#waitingOn.delete(d);
        this.#ready.push(this.#infos.get(d)!);
      }
    }
  }

  /** Marks `path` failed; returns the waiting paths that can now never be pushed, transitively. */
  fail(path: string): string[] {
    this.#unfinished--;
    const blocked: string[] = [];
    const visit = (p: string) => {
      for (const d of this.#dependents.get(p) ?? []) {
        if (!this.#waitingOn.delete(d)) continue;
        this.#unfinished--;
        blocked.push(d);
        visit(d);
      }
    };
    visit(path);
    return blocked;
  }

  /** Store paths cannot reference each other in a cycle; a cycle here means bad metadata and would hang. */
  #checkAcyclic(): void {
    const done = new Set<string>();
    const queue = this.#ready.map((i) => i.path);
    const remaining = new Map([...this.#waitingOn].map(([p, refs]) => [p, refs.size]));
    while (queue.length > 0) {
      const p = queue.pop()!;
      done.add(p);
      for (const d of this.#dependents.get(p) ?? []) {
        const n = remaining.get(d)! - 1;
        remaining.set(d, n);
        if (n === 0) queue.push(d);
      }
    }
    if (done.size !== this.#infos.size) {
      const stuck = [...this.#infos.keys()].filter((p) => !done.has(p));
      throw new Error(`reference cycle among ${stuck.length} paths, e.g. ${stuck[0]}`);
    }
  }
}
