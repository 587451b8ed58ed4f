// Notices new store paths. Nix holds `<path>.lock` while it builds or substitutes
// a path and removes it once the path is valid (what Attic listens for); a path
// added without a lock is accepted once it has existed, lock-free, for a moment.
import { watch, type FSWatcher } from 'node:fs';
import { access } from 'node:fs/promises';
import { parseStorePathBaseName } from '../../nix/store-path.ts';

export interface StoreWatcherOptions {
  storeDir: string;
  onPath: (path: string) => void;
  onError: (e: Error) => void;
  /** How long a new entry must exist without a lock before it counts (default 1 s). */
  settleMs?: number;
}

const IGNORED_SUFFIXES = ['.drv', '.lock', '.chksum'];

export function watchStore(opts: StoreWatcherOptions): { close(): void } {
  const settleMs = opts.settleMs ?? 1000;
  const timers = new Set<NodeJS.Timeout>();
  let closed = false;
  const check = async (name: string) => {
    const path = `${opts.storeDir}/${name}`;
    if ((await exists(`${path}.lock`)) || !(await exists(path)) || closed) return;
    opts.onPath(path);
  };
  const watcher: FSWatcher = watch(opts.storeDir, { persistent: true }, (_event, filename) => {
    if (!filename) return;
    const name = filename.toString();
    if (name.endsWith('.lock')) {
      // Creation and removal both arrive as 'rename'; check() tells them apart.
      const base = name.slice(0, -'.lock'.length);
      if (isStorePathName(base)) void check(base);
    } else if (isStorePathName(name)) {
      const t = setTimeout(() => {
        timers.delete(t);
        void check(name);
      }, settleMs);
      timers.add(t);
    }
  });
  watcher.on('error', opts.onError);
  return {
    close() {
      closed = true;
      watcher.close();
      for (const t of timers) clearTimeout(t);
    },
  };
}

/** A top-level store entry that could be a pushable path: not a derivation, lock, or temporary name. */
export function isStorePathName(name: string): boolean {
  if (IGNORED_SUFFIXES.some((s) => name.endsWith(s))) return false;
  try {
    parseStorePathBaseName(name);
    return true;
  } catch {
    return false;
  }
}

async function exists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  );
}
