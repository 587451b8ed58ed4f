// Builds the filesystem trees whose NARs (made by `nix-store --dump`) live in test/fixtures/nix/dump.
// Git cannot carry empty dirs or exact modes, so the trees are recreated on every run.
import { chmod, mkdir, mkdtemp, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const FIXTURES = new URL('../../fixtures/nix/', import.meta.url).pathname;

/** Deterministic pseudo-random bytes (xorshift32), so the big file needs no fixture. */
export function pseudoRandom(size: number, seed = 0x9e3779b9): Buffer {
  const out = Buffer.allocUnsafe(size);
  let x = seed >>> 0;
  for (let i = 0; i < size; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    out[i] = x & 0xff;
  }
  return out;
}

export const BIG_FILE_SIZE = 5 * 1024 * 1024 + 3;

async function file(path: string, data: string | Buffer, mode: number): Promise<void> {
  await writeFile(path, data);
  await chmod(path, mode);
}

/** Creates every fixture tree under a fresh temp dir and returns its path. */
export async function makeTrees(): Promise<string> {
  const root = await mkdtemp(join(tmpdir(), 'loft-nar-'));

  const tree = join(root, 'tree');
  await mkdir(join(tree, 'sub', 'deeper'), { recursive: true });
  await mkdir(join(tree, 'empty-dir'));
  await file(join(tree, 'a.txt'), 'hello\n', 0o644);
  await file(join(tree, 'empty'), '', 0o644);
  await file(join(tree, 'run.sh'), '#!/bin/sh\necho hi\n', 0o755);
  await file(join(tree, 'owner-x'), 'x', 0o744);
  await file(join(tree, 'group-x'), 'not executable for nix\n', 0o654);
  await file(join(tree, 'Upper'), 'sorts before lowercase\n', 0o644);
  await file(join(tree, 'z\u00e9.txt'), 'utf-8 name\n', 0o644);
  await file(join(tree, 'sub', 'eight'), '12345678', 0o644);
  await file(join(tree, 'sub', 'deeper', 'thirteen'), 'x'.repeat(13), 0o644);
  await symlink('../a.txt', join(tree, 'sub', 'rel'));
  await symlink('/etc/hostname', join(tree, 'abs'));

  await file(join(root, 'single.txt'), 'single file\n', 0o644);
  await file(join(root, 'exec-root'), '#!/bin/sh\n', 0o755);
  await symlink('some/where/else', join(root, 'link-root'));
  await file(join(root, 'big.bin'), pseudoRandom(BIG_FILE_SIZE), 0o644);
  return root;
}

/** Small trees with a committed NAR: name in the temp dir → fixture file. */
export const DUMPED = ['tree', 'single.txt', 'exec-root', 'link-root'] as const;
