import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { NixFormatError } from '../../../src/nix/errors.ts';
import { formatNarInfo, parseNarInfo, type NarInfo } from '../../../src/nix/narinfo.ts';
import { FIXTURES } from './fixture-trees.ts';

// Written by `nix copy --to file://…?compression=zstd&secret-key=…` (Nix 2.8).
const CACHE = join(FIXTURES, 'cache');
const read = (name: string) => readFileSync(join(CACHE, name), 'utf8');
const WITH_REFS = read('0zq8c3rkh4v8rfv6dkl6anw3nn2bcma4.narinfo');
const CA_FILE = read('4gk46f0fgs7hvxyrksrsq6dw8vlyhykz.narinfo');

function rejects(text: string, message: RegExp): void {
  assert.throws(() => parseNarInfo(text), (err: unknown) => {
    assert.ok(err instanceof NixFormatError);
    assert.match(err.message, message);
    return true;
  });
}

test('parses a Nix-written narinfo with references and deriver', () => {
  assert.deepEqual(parseNarInfo(WITH_REFS), {
    storePath: '/nix/store/0zq8c3rkh4v8rfv6dkl6anw3nn2bcma4-withrefs-1.0',
    url: 'nar/0zy824cs59997acn4c3258n17vlxyg4wb46vw9766bwjx1xb25s1.nar.zst',
    compression: 'zstd',
    fileHash: 'sha256:0zy824cs59997acn4c3258n17vlxyg4wb46vw9766bwjx1xb25s1',
    fileSize: 252,
    narHash: 'sha256:0lnhklrcj0b1gbkcwnyz4w4jn19zx4vh12qrg8iwq94gv2pqw0gf',
    narSize: 608,
    references: ['4gk46f0fgs7hvxyrksrsq6dw8vlyhykz-single.txt', 'l1r8pba0bgijvfiva1zvwdzphaklv2ar-tree'],
    deriver: '1ab2c3d4f5g6h7i8j9k0lmnpqrsvwxyz-withrefs-1.0.drv',
    sigs: ['loft-test-1:8zD8FYHUHwnAWM0jvyjGO408BX69lAV4hk2lYg6WWc17sFDLHDfgws56shFdp4mBwsP61YbjsFHA9BdjgpXwAg=='],
  } satisfies NarInfo);
});

test('parses a content-addressed narinfo with empty references', () => {
  const info = parseNarInfo(CA_FILE);
  assert.deepEqual(info.references, []);
  assert.equal(info.ca, 'fixed:r:sha256:0v033h4fi0kjmr14knqd4x18l9w973nph2c6vcblxx3j003ps45b');
  assert.equal(info.deriver, undefined);
  assert.match(CA_FILE, /^References: \n/m);
});

test('formatting every Nix-written narinfo gives back the identical bytes', () => {
  const files = readdirSync(CACHE).filter((f) => f.endsWith('.narinfo'));
  assert.equal(files.length, 3);
  for (const file of files) {
    const text = read(file);
    assert.equal(formatNarInfo(parseNarInfo(text)), text, file);
  }
});

test('formats optional fields in Nix order and omits undefined ones', () => {
  const info = parseNarInfo(WITH_REFS);
  const text = formatNarInfo({ ...info, system: 'x86_64-linux', ca: 'fixed:r:sha256:' + '0'.repeat(52), sigs: ['a:b', 'c:d'] });
  assert.deepEqual(
    text.split('\n').map((l) => l.split(':')[0]),
    ['StorePath', 'URL', 'Compression', 'FileHash', 'FileSize', 'NarHash', 'NarSize', 'References', 'Deriver', 'System', 'Sig', 'Sig', 'CA', ''],
  );
  const minimal = formatNarInfo({
    storePath: info.storePath,
    url: 'nar/x.nar',
    compression: 'none',
    narHash: info.narHash,
    narSize: 1,
    references: [],
    sigs: [],
  });
  assert.equal(
    minimal,
    `StorePath: ${info.storePath}\nURL: nar/x.nar\nCompression: none\nNarHash: ${info.narHash}\nNarSize: 1\nReferences: \n`,
  );
  assert.throws(() => formatNarInfo({ ...info, url: 'x\nSig: evil:AAAA' }), NixFormatError);
});

test('ignores unknown keys, tolerates CRLF, defaults Compression, maps unknown-deriver', () => {
  const text = WITH_REFS.replace('Compression: zstd\n', 'Future: thing\n').replace(
    /Deriver: .*\n/,
    'Deriver: unknown-deriver\n',
  );
  const info = parseNarInfo(text.replaceAll('\n', '\r\n'));
  assert.equal(info.compression, 'bzip2');
  assert.equal(info.deriver, undefined);
  assert.equal(info.narSize, 608);
});

test('accepts any hash encoding Nix accepts', () => {
  const sri = WITH_REFS.replace(/NarHash: .*/, 'NarHash: sha256-7gGOr9iPJMwjehmLADfpPwUrCSffW87memEByTKd0FI=');
  assert.equal(parseNarInfo(sri).narHash, 'sha256-7gGOr9iPJMwjehmLADfpPwUrCSffW87memEByTKd0FI=');
});

test('names the missing required field', () => {
  for (const key of ['StorePath', 'URL', 'NarHash', 'NarSize']) {
    rejects(WITH_REFS.replace(new RegExp(`^${key}: .*\\n`, 'm'), ''), new RegExp(`missing required field '${key}'`));
  }
});

test('rejects invalid values with a clear message', () => {
  rejects(WITH_REFS.replace('/nix/store/0zq8', '/nix/store/0eq8'), /StorePath: invalid store path hash/);
  rejects(WITH_REFS.replace('/nix/store/', '/gnu/store/'), /StorePath: .*not in store directory/);
  rejects(WITH_REFS.replace('NarSize: 608', 'NarSize: 6o8'), /NarSize '6o8' is not a non-negative integer/);
  rejects(WITH_REFS.replace('NarSize: 608', 'NarSize: -1'), /NarSize '-1'/);
  rejects(WITH_REFS.replace('NarSize: 608', 'NarSize: 99999999999999999999'), /NarSize/);
  rejects(WITH_REFS.replace('FileSize: 252', 'FileSize: 0x10'), /FileSize '0x10'/);
  rejects(WITH_REFS.replace(/NarHash: sha256:/, 'NarHash: sha512:'), /NarHash: .*unsupported hash algorithm/);
  rejects(WITH_REFS.replace(/FileHash: sha256:0/, 'FileHash: sha256:'), /FileHash: .*sha256/);
  rejects(WITH_REFS.replace('-single.txt', '-single$txt'), /References: .*illegal character '\$'/);
  rejects(WITH_REFS.replace('References: 4gk4', 'References: 4gk'), /References: invalid store path hash/);
  rejects(WITH_REFS.replace(/Deriver: .*/, 'Deriver: /nix/store/1ab2c3d4f5g6h7i8j9k0lmnpqrsvwxyz-x.drv'), /Deriver: /);
  rejects(WITH_REFS + 'URL: again\n', /duplicate field 'URL'/);
  rejects(WITH_REFS + 'no colon here\n', /line 11 is not of the form/);
  // Found by fuzzing: a '\r' inside a value was accepted, and the narinfo could then not be written back.
  rejects(WITH_REFS + 'Sig: a\rb:c\n', /line 11 contains a control character/);
  rejects(WITH_REFS.replace('URL: nar/', 'URL: nar/\u0000'), /contains a control character/);
});
