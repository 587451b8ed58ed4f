// The spool file of an upstream download (src/core/spool.ts): pieces written in order as they
// arrive, and readers that follow the file as it grows, on real files.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { open, readFile } from 'node:fs/promises';
import path from 'node:path';
import { followSpool, SpoolFile } from '../../../src/core/spool.ts';
import { makeTempDir } from '../../helpers/tmp.ts';

async function withSpool(fn: (spool: SpoolFile, file: string) => Promise<void>): Promise<void> {
  const tmp = await makeTempDir('loft-spool-');
  try {
    const file = path.join(tmp.path, 'spool');
    const spool = await SpoolFile.open(file, () => {});
    try {
      await fn(spool, file);
    } finally {
      await spool.close();
    }
  } finally {
    await tmp.cleanup();
  }
}

/** Appends `data` in pieces of `size`, each on a tick of its own; resolves once all are on disk. */
async function appendInPieces(spool: SpoolFile, data: Buffer, size: number): Promise<void> {
  const done: Promise<void>[] = [];
  for (let at = 0; at < data.length; at += size) {
    done.push(new Promise((resolve) => spool.append(data.subarray(at, at + size), resolve)));
    await new Promise(setImmediate);
  }
  await Promise.all(done);
  await spool.flush();
}

test('pieces appended while a write is in flight are written together, in order', async () => {
  await withSpool(async (spool, file) => {
    const data = randomBytes(3 << 20);
    let growths = 0;
    const counted = spool.grown().then(() => growths++);
    await appendInPieces(spool, data, 64 * 1024);
    await counted;
    assert.equal(spool.written, data.length);
    assert.ok(growths > 0);
    assert.ok((await readFile(file)).equals(data));
  });
});

test('a follower reads from its offset as the file grows, and gets the last byte only once the length is given', async () => {
  await withSpool(async (spool) => {
    const data = randomBytes(2 << 20);
    let accept!: (n: number) => void;
    const end = new Promise<number>((resolve) => (accept = resolve));
    const received: Buffer[] = [];
    const following = followSpool(await open(spool.path), spool, 1000, end, async (piece) => {
      received.push(Buffer.from(piece));
    });
    await appendInPieces(spool, data, 48 * 1024);
    const length = () => received.reduce((n, b) => n + b.length, 0);
    for (const deadline = Date.now() + 5_000; length() < data.length - 1001 && Date.now() < deadline; ) {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.equal(length(), data.length - 1000 - 1, 'everything but the last byte, before the verdict');
    accept(data.length);
    await following;
    assert.ok(Buffer.concat(received).equals(data.subarray(1000)));
  });
});

test('a follower of a refused file fails without its last byte', async () => {
  await withSpool(async (spool) => {
    const data = randomBytes(256 * 1024);
    let refuse!: (e: Error) => void;
    const end = new Promise<number>((_, reject) => (refuse = reject));
    let received = 0;
    const following = followSpool(await open(spool.path), spool, 0, end, async (piece) => {
      received += piece.length;
    });
    await appendInPieces(spool, data, 16 * 1024);
    refuse(new Error('NarHash mismatch'));
    await assert.rejects(following, /NarHash mismatch/);
    assert.ok(received < data.length, `received ${received} of ${data.length}`);
  });
});

test('a follower waits for a slow consumer: one read at a time, nothing skipped', async () => {
  await withSpool(async (spool) => {
    const data = randomBytes(3 << 20);
    await appendInPieces(spool, data, 1 << 20);
    const received: Buffer[] = [];
    let busy = false;
    await followSpool(await open(spool.path), spool, 0, Promise.resolve(data.length), async (piece) => {
      assert.equal(busy, false, 'write is awaited before the next read');
      busy = true;
      received.push(Buffer.from(piece));
      await new Promise((resolve) => setTimeout(resolve, 5));
      busy = false;
    });
    assert.ok(Buffer.concat(received).equals(data));
  });
});
