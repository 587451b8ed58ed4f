import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { readFile, readlink, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { after, before, test } from 'node:test';
import { NixFormatError } from '../../../src/nix/errors.ts';
import { MAX_DEPTH, NarParser } from '../../../src/nix/nar/parser.ts';
import type { NarEntry } from '../../../src/nix/nar/types.ts';
import { dumpPath } from '../../../src/nix/nar/writer.ts';
import { DUMPED, FIXTURES, makeTrees } from './fixture-trees.ts';
import { archive, dir, file, nar, symlink, u64 } from './nar-builder.ts';

let root: string;
before(async () => {
  root = await makeTrees();
});
after(async () => {
  await rm(root, { recursive: true, force: true });
});

const fixtureNar = (name: string) => readFileSync(join(FIXTURES, 'dump', `${name}.nar`));
const cacheNars = () =>
  readdirSync(join(FIXTURES, 'cache', 'nar')).map((f) => readFileSync(join(FIXTURES, 'cache', 'nar', f)));

/** Yields `buf` in pieces whose sizes come from `sizes` (cycled). */
async function* pieces(buf: Buffer, sizes: () => number): AsyncGenerator<Buffer> {
  for (let pos = 0; pos < buf.length; ) {
    const n = Math.max(1, sizes());
    yield buf.subarray(pos, pos + n);
    pos += n;
  }
}

async function parse(input: AsyncIterable<Uint8Array>): Promise<{ entries: NarEntry[]; bytesSeen: number }> {
  const parser = new NarParser();
  const entries: NarEntry[] = [];
  parser.on('entry', (e: NarEntry) => entries.push(e));
  await pipeline(input, parser);
  return { entries, bytesSeen: parser.bytesSeen };
}

const whole = (buf: Buffer) => pieces(buf, () => buf.length);

async function parseError(buf: Buffer): Promise<NixFormatError> {
  try {
    await parse(whole(buf));
  } catch (err) {
    assert.ok(err instanceof NixFormatError, `expected NixFormatError, got ${String(err)}`);
    return err;
  }
  assert.fail('parser accepted invalid NAR');
}

async function rejects(buf: Buffer, message: RegExp): Promise<void> {
  assert.match((await parseError(buf)).message, message);
}

test('accepts Nix-made NARs and every regular entry narOffset points at the file contents', async () => {
  for (const name of DUMPED) {
    const buf = fixtureNar(name);
    const { entries, bytesSeen } = await parse(whole(buf));
    assert.equal(bytesSeen, buf.length);
    for (const entry of entries) {
      const onDisk = join(root, name, entry.path);
      if (entry.type === 'regular') {
        const contents = await readFile(onDisk);
        assert.equal(entry.size, contents.length, entry.path);
        assert.deepEqual(buf.subarray(entry.narOffset, entry.narOffset + entry.size), contents, entry.path);
      } else if (entry.type === 'symlink') {
        assert.equal(entry.target, await readlink(onDisk));
      }
    }
  }
  for (const buf of cacheNars()) assert.equal((await parse(whole(buf))).bytesSeen, buf.length);
});

test('emits entries in NAR order with the expected shape', async () => {
  const { entries } = await parse(whole(fixtureNar('tree')));
  assert.deepEqual(
    entries.map((e) => `${e.type}:${e.path}`),
    [
      'directory:',
      'regular:Upper',
      'regular:a.txt',
      'symlink:abs',
      'regular:empty',
      'directory:empty-dir',
      'regular:group-x',
      'regular:owner-x',
      'regular:run.sh',
      'directory:sub',
      'directory:sub/deeper',
      'regular:sub/deeper/thirteen',
      'regular:sub/eight',
      'symlink:sub/rel',
      'regular:z\u00e9.txt',
    ],
  );
  const byPath = new Map(entries.map((e) => [e.path, e]));
  assert.deepEqual(byPath.get('run.sh'), { type: 'regular', path: 'run.sh', size: 18, executable: true, narOffset: 1656 });
  assert.equal((byPath.get('owner-x') as { executable: boolean }).executable, true);
  assert.equal((byPath.get('group-x') as { executable: boolean }).executable, false);
  assert.deepEqual(byPath.get('abs'), { type: 'symlink', path: 'abs', target: '/etc/hostname' });
  const single = await parse(whole(fixtureNar('single.txt')));
  assert.deepEqual(single.entries, [{ type: 'regular', path: '', size: 12, executable: false, narOffset: 96 }]);
  const link = await parse(whole(fixtureNar('link-root')));
  assert.deepEqual(link.entries, [{ type: 'symlink', path: '', target: 'some/where/else' }]);
});

test('gives identical results however the input is split', async () => {
  let seed = 42;
  const random = () => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return 1 + (seed % 40);
  };
  for (const buf of [...DUMPED.map(fixtureNar), ...cacheNars()]) {
    const expected = await parse(whole(buf));
    for (const sizes of [() => 1, () => 7, () => 8, () => 9, random]) {
      assert.deepEqual(await parse(pieces(buf, sizes)), expected);
    }
  }
});

test('parses a 5 MB NAR streamed from dumpPath', async () => {
  const { entries, bytesSeen } = await parse(dumpPath(join(root, 'big.bin')));
  assert.equal(bytesSeen, 5243000);
  assert.deepEqual(entries, [{ type: 'regular', path: '', size: 5 * 1024 * 1024 + 3, executable: false, narOffset: 96 }]);
});

test('accepts hand-built NARs equal to what Nix writes', async () => {
  assert.deepEqual(archive(file('single file\n')), fixtureNar('single.txt'));
  assert.deepEqual(archive(file('#!/bin/sh\n', true)), fixtureNar('exec-root'));
  assert.deepEqual(archive(symlink('some/where/else')), fixtureNar('link-root'));
  const names = await parse(whole(archive(dir(['A', file('')], ['__proto__', file('')], ['a', dir()], ['a-', file('')]))));
  assert.deepEqual(names.entries.map((e) => e.path), ['', 'A', '__proto__', 'a', 'a-']);
});

test('rejects a bad magic', async () => {
  await rejects(nar('nix-archive-2', ...file('')), /at byte 0: bad magic, not a NAR/);
  await rejects(Buffer.from('\x1f\x8b\x08\x00 gzip data, not a nar'), /bad magic/);
  await rejects(nar('x'.repeat(100)), /bad magic/);
});

test('rejects unsorted, duplicate and invalid entry names', async () => {
  const twoFiles = (a: string | Buffer, b: string | Buffer) => archive(dir([a, file('')], [b, file('')]));
  await rejects(twoFiles('b', 'a'), /unsorted entry 'a' after 'b' in directory ''/);
  await rejects(twoFiles('a', 'B'), /unsorted entry 'B'/); // byte order: 'B' (0x42) < 'a' (0x61)
  await rejects(twoFiles('same', 'same'), /duplicate entry 'same'/);
  const one = (name: string | Buffer) => archive(dir([name, file('')]));
  await rejects(one('..'), /entry name '\.\.'/);
  await rejects(one('.'), /entry name '\.'/);
  await rejects(one(''), /empty entry name/);
  await rejects(one('a/b'), /contains '\/'/);
  await rejects(one(Buffer.from('a\0b')), /NUL byte/);
  await rejects(one('n'.repeat(256)), /entry name is 256 bytes long, limit is 255/);
  assert.equal((await parse(whole(one('n'.repeat(255))))).entries.length, 2);
  // Nested directories are checked too, with the directory named.
  await rejects(archive(dir(['d', dir(['y', file('')], ['x', file('')])])), /unsorted entry 'x' after 'y' in directory 'd'/);
});

test('reports the byte offset of a bad name', async () => {
  const buf = archive(dir(['a', file('')], ['a', file('')]));
  const second = buf.lastIndexOf(nar('name', 'a')) + nar('name').length;
  await rejects(buf, new RegExp(`invalid NAR at byte ${second}: duplicate entry 'a'`));
});

test('rejects non-zero padding in strings and in file contents', async () => {
  const good = archive(file('abc'));
  const contentsPad = good.indexOf(Buffer.from('abc')) + 3;
  const badContents = Buffer.from(good);
  badContents[contentsPad + 2] = 1;
  await rejects(badContents, /non-zero padding after contents of ''/);
  const badToken = Buffer.from(good);
  const typePad = good.indexOf(Buffer.from('regular')) + 7;
  badToken[typePad] = 0x20;
  await rejects(badToken, new RegExp(`at byte ${typePad}: non-zero padding after 'regular' or 'directory' or 'symlink'`));
  const badMagic = Buffer.from(good);
  badMagic[8 + 13] = 0x20; // inside the padding of "nix-archive-1"
  await rejects(badMagic, /at byte 0: bad magic/);
});

test('rejects structural errors', async () => {
  await rejects(nar('nix-archive-1', '(', 'type', 'fifo', ')'), /expected 'regular' or 'directory' or 'symlink', got 'fifo'/);
  await rejects(nar('nix-archive-1', 'type'), /expected '\('/);
  await rejects(nar('nix-archive-1', '(', 'type', 'regular', 'executable', 'x', 'contents', '', ')'), /executable marker has a non-empty value/);
  await rejects(nar('nix-archive-1', '(', 'type', 'regular', 'contents', '', 'executable', ''), /expected '\)'/);
  await rejects(nar('nix-archive-1', '(', 'type', 'regular', 'executable', '', 'executable', ''), /expected 'contents'/);
  await rejects(nar('nix-archive-1', '(', 'type', 'symlink', 'target', '', ')'), /empty symlink target/);
  await rejects(archive(symlink('t'.repeat(4097))), /symlink target is 4097 bytes long, limit is 4096/);
  await rejects(archive(symlink(Buffer.from('a\0b'))), /NUL byte in symlink target/);
  await rejects(nar('nix-archive-1', '(', 'type', 'regular', 'contents', { raw: u64(2n ** 60n) }), /file size is too large/);
  await rejects(nar('nix-archive-1', { raw: u64(2n ** 40n) }), /at byte 24: expected '\(', got a 1099511627776-byte string/);
  await rejects(nar({ raw: u64(2n ** 40n) }), /at byte 0: bad magic/);
});

test('rejects directories nested deeper than the limit', async () => {
  let node = file('');
  for (let i = 0; i <= MAX_DEPTH; i++) node = dir(['d', node]);
  await rejects(archive(node), new RegExp(`nested deeper than ${MAX_DEPTH}`));
});

test('rejects trailing data after the root node', async () => {
  const buf = fixtureNar('tree');
  await rejects(Buffer.concat([buf, Buffer.from([0])]), new RegExp(`trailing data after the end of the NAR at byte ${buf.length}`));
  await rejects(Buffer.concat([buf, nar('(')]), /trailing data/);
});

test('rejects a NAR truncated at any point', async () => {
  const buf = fixtureNar('tree');
  for (let cut = 0; cut < buf.length; cut++) {
    const err = await parseError(buf.subarray(0, cut));
    assert.match(err.message, new RegExp(`^NAR truncated at byte ${cut}: expected `), `cut at ${cut}`);
  }
  assert.match((await parseError(buf.subarray(0, 240))).message, /^NAR truncated at byte 240: expected 23 bytes of contents of 'Upper'$/);
  assert.match((await parseError(Buffer.alloc(0))).message, /^NAR truncated at byte 0: expected length of 'nix-archive-1'$/);
});
