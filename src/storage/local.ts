import { randomBytes } from 'node:crypto';
import type { Dirent } from 'node:fs';
import { mkdir, open, readdir, readFile, rename, rm, stat, unlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { assertValidKey, assertValidPrefix } from './keys.ts';
import { PRIVATE_DIR, PRIVATE_FILE } from './modes.ts';
import { assertValidRange } from './range.ts';
import { BlobNotFoundError, type BlobListing, type BlobStore, type ByteRange } from './types.ts';

export interface LocalStorageConfig { type: 'local'; path: string }

// Temporary files live next to their final name so the rename stays within one filesystem (atomic).
const TEMP_PREFIX = '.tmp-';
const DELETE_BATCH = 64;

/** Blobs as plain files: key `a/b/c` is stored at `<path>/a/b/c`. */
export class LocalBlobStore implements BlobStore {
  readonly kind = 'local';
  readonly #root: string;
  // Directories created (or first seen) by this process, with their ancestors' entries made durable.
  readonly #readyDirs = new Map<string, Promise<void>>();

  constructor(cfg: LocalStorageConfig) {
    this.#root = path.resolve(cfg.path);
  }

  async put(key: string, body: Readable | Buffer): Promise<{ size: number }> {
    const file = this.#pathOf(key);
    const dir = path.dirname(file);
    await this.#ensureDir(dir);
    const tmp = path.join(dir, TEMP_PREFIX + randomBytes(8).toString('hex'));
    let size: number;
    try {
      const handle = await open(tmp, 'wx', PRIVATE_FILE);
      try {
        await writeFile(handle, body);
        size = (await handle.stat()).size;
        // The data must be on disk before the rename can make it visible under the key.
        await handle.sync();
      } finally {
        await handle.close();
      }
      await rename(tmp, file);
    } catch (err) {
      await rm(tmp, { force: true });
      throw err;
    }
    // Makes the rename itself durable before the caller commits a DB row that points at it.
    await fsyncDir(dir);
    return { size };
  }

  async get(key: string, range?: ByteRange): Promise<Readable> {
    if (range) assertValidRange(range);
    const file = this.#pathOf(key);
    // Opening first turns a missing file into a rejection here rather than a later stream error.
    const handle = await open(file, 'r').catch((err: unknown) => rethrowMissing(err, key));
    return handle.createReadStream(range ? { start: range.start, end: range.end } : {});
  }

  async getBuffer(key: string): Promise<Buffer> {
    return readFile(this.#pathOf(key)).catch((err: unknown) => rethrowMissing(err, key));
  }

  async head(key: string): Promise<{ size: number } | null> {
    try {
      const st = await stat(this.#pathOf(key));
      return st.isFile() ? { size: st.size } : null;
    } catch (err) {
      if (isMissing(err)) return null;
      throw err;
    }
  }

  async delete(keys: string[]): Promise<void> {
    const files = keys.map((key) => this.#pathOf(key));
    for (let i = 0; i < files.length; i += DELETE_BATCH) {
      await Promise.all(files.slice(i, i + DELETE_BATCH).map((file) => unlink(file).catch(ignoreMissing)));
    }
  }

  async *list(prefix: string): AsyncIterable<BlobListing> {
    assertValidPrefix(prefix);
    const inPrefix = (rel: string): boolean => rel.startsWith(prefix) || prefix.startsWith(rel);
    for await (const key of this.#walk('', inPrefix)) {
      if (path.posix.basename(key).startsWith(TEMP_PREFIX) || !key.startsWith(prefix)) continue;
      const st = await stat(this.#pathOf(key)).catch(() => null);
      if (st?.isFile()) yield { key, size: st.size, modifiedAt: st.mtimeMs };
    }
  }

  async check(): Promise<void> {
    await mkdir(this.#root, { recursive: true, mode: PRIVATE_DIR });
    const probe = path.join(this.#root, `${TEMP_PREFIX}healthz-${randomBytes(8).toString('hex')}`);
    const payload = randomBytes(16);
    try {
      await writeFile(probe, payload, { flag: 'wx', mode: PRIVATE_FILE });
      if (!(await readFile(probe)).equals(payload)) throw new Error(`local storage probe read back different bytes (${probe})`);
    } finally {
      await rm(probe, { force: true });
    }
  }

  /** Removes `.tmp-*` files left by crashed writers that are older than olderThanMs; returns how many. */
  async sweepTemporaryFiles(olderThanMs: number): Promise<number> {
    const cutoff = Date.now() - olderThanMs;
    let removed = 0;
    for await (const rel of this.#walk('', () => true)) {
      if (!path.posix.basename(rel).startsWith(TEMP_PREFIX)) continue;
      const file = path.join(this.#root, rel);
      const st = await stat(file).catch(() => null);
      if (st && st.mtimeMs < cutoff) {
        await unlink(file).catch(ignoreMissing);
        removed++;
      }
    }
    return removed;
  }

  #pathOf(key: string): string {
    assertValidKey(key);
    return path.join(this.#root, key);
  }

  /** Yields file paths relative to the root (with '/'), descending only into directories accepted by descend. */
  async *#walk(relDir: string, descend: (relDirWithSlash: string) => boolean): AsyncGenerator<string> {
    let entries: Dirent[];
    try {
      entries = await readdir(path.join(this.#root, relDir), { withFileTypes: true });
    } catch (err) {
      if (isMissing(err)) return;
      throw err;
    }
    entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const entry of entries) {
      const rel = relDir + entry.name;
      if (entry.isDirectory()) {
        if (descend(rel + '/')) yield* this.#walk(rel + '/', descend);
      } else if (entry.isFile()) {
        yield rel;
      }
    }
  }

  /** Creates dir if needed and fsyncs every ancestor up to the root once per process, so new entries survive a crash. */
  #ensureDir(dir: string): Promise<void> {
    let ready = this.#readyDirs.get(dir);
    if (!ready) {
      ready = (async () => {
        await mkdir(dir, { recursive: true, mode: PRIVATE_DIR });
        for (let d = dir; d !== this.#root; d = path.dirname(d)) await fsyncDir(path.dirname(d));
      })();
      ready.catch(() => this.#readyDirs.delete(dir));
      this.#readyDirs.set(dir, ready);
    }
    return ready;
  }
}

async function fsyncDir(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

function isMissing(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | null)?.code;
  return code === 'ENOENT' || code === 'ENOTDIR';
}

function ignoreMissing(err: unknown): void {
  if (!isMissing(err)) throw err;
}

function rethrowMissing(err: unknown, key: string): never {
  throw isMissing(err) ? new BlobNotFoundError(key) : err;
}
