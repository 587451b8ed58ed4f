// Content-addressed store paths computed as Nix does, checked against paths the real `nix` made
// (nix-store --add-fixed, nix-store --add, builtins.toFile) and their `nix path-info --json`.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { nixUnavailable, skipUnless } from '../../helpers/env.ts';
import { nix, nixEnv } from '../../helpers/nix.ts';
import { makeTempDir } from '../../helpers/tmp.ts';
import { NixFormatError } from '../../../src/nix/errors.ts';
import { contentAddressedPath, parseContentAddress, parseStorePath } from '../../../src/nix/store-path.ts';

interface PathInfoJson {
  path: string;
  ca?: string;
  references: string[];
}

test('CA store paths follow from the CA field and references exactly as real nix computes them', { timeout: 120_000 }, async (t) => {
  if (!skipUnless(t, nixUnavailable())) return;
  const tmp = await makeTempDir('loft-ca-');
  t.after(() => tmp.cleanup());
  const env = nixEnv(tmp.path);
  const salt = randomBytes(8).toString('hex');
  const file = path.join(tmp.path, 'flat.txt');
  await writeFile(file, `flat ${salt}`);
  const tree = path.join(tmp.path, 'tree');
  await mkdir(path.join(tree, 'sub'), { recursive: true });
  await writeFile(path.join(tree, 'sub', 'a'), salt);

  const paths = [
    await nix(['--add-fixed', 'sha256', file], env, 'nix-store'), // fixed:sha256
    await nix(['--add-fixed', 'sha1', file], env, 'nix-store'), // fixed:sha1
    await nix(['--add-fixed', '--recursive', 'sha256', tree], env, 'nix-store'), // fixed:r:sha256 (source)
    await nix(['--add-fixed', '--recursive', 'sha512', tree], env, 'nix-store'), // fixed:r:sha512
    await nix(['--add', file], env, 'nix-store'), // nix-store --add: fixed:r:sha256
    // text:sha256 with a reference to another text path
    JSON.parse(
      await nix(['--eval', '--read-write-mode', '-E', `let x = builtins.toFile "x-${salt}" "hello"; in builtins.toFile "y-${salt}" "ref \${x}"`], env, 'nix-instantiate'),
    ) as string,
  ];
  const infos = JSON.parse(await nix(['path-info', '--json', ...paths], env)) as PathInfoJson[];
  const kinds = new Set<string>();
  for (const info of infos) {
    assert.ok(info.ca, `${info.path} has a CA field`);
    const sp = parseStorePath(info.path);
    const ca = parseContentAddress(info.ca);
    kinds.add(info.ca.split(':').slice(0, -1).join(':'));
    const refs = info.references.map((r) => parseStorePath(r).baseName);
    assert.equal(contentAddressedPath(ca, sp.name, refs, sp.baseName), info.path, info.ca);
    // Any other digest, name or reference set gives another path.
    const other = { ...ca, digest: Buffer.from(ca.digest).fill(ca.digest[0] ^ 1, 0, 1) };
    assert.notEqual(contentAddressedPath(other, sp.name, refs, sp.baseName), info.path);
    assert.notEqual(contentAddressedPath(ca, `${sp.name}x`, refs, sp.baseName), info.path);
  }
  assert.deepEqual([...kinds].sort(), ['fixed:r:sha256', 'fixed:r:sha512', 'fixed:sha1', 'fixed:sha256', 'text:sha256']);
  const text = infos.find((i) => i.ca!.startsWith('text:'))!;
  assert.equal(text.references.length, 1, 'the text path has a reference');
  assert.notEqual(contentAddressedPath(parseContentAddress(text.ca!), parseStorePath(text.path).name, [], ''), text.path);
});

test('malformed CA fields and impossible reference sets are refused', () => {
  const bad = ['', 'fixed:', 'fixed:sha256:', 'fixed:r:sha256:zz', 'text:sha1:rly02ygcanc04nb035x5zzl02mgcmgpn', 'fixed:md4:abcd', 'fixed:sha256:0xj98322k2ggqiyw5k3kf0xvyj8zyn18szbzjhj1wzlmq6sbzpr', 'source:sha256:0xj98322k2ggqiyw5k3kf0xvyj8zyn18szbzjhj1wzlmq6sbzprw'];
  for (const ca of bad) assert.throws(() => parseContentAddress(ca), NixFormatError, ca);
  const flat = parseContentAddress('fixed:sha256:0xj98322k2ggqiyw5k3kf0xvyj8zyn18szbzjhj1wzlmq6sbzprw');
  assert.throws(() => contentAddressedPath(flat, 'x', ['g1qw38zdfx3jy4rv77pp98yi6w91aiar-other'], 'self'), /cannot have references/);
  const text = parseContentAddress('text:sha256:1ldnhs4s9k94f39g1bnkfl1w3c56r2yir3azz12ph5in8nf599vz');
  assert.throws(() => contentAddressedPath(text, 'y', ['s-y'], 's-y'), /cannot refer to itself/);
  // Hex digests read like nix-base32 ones.
  const hex = parseContentAddress(`fixed:r:sha256:${flat.digest.toString('hex')}`);
  assert.deepEqual(hex.digest, flat.digest);
});
