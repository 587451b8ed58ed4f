// The CA proof that lets pull-through accept an unsigned upstream narinfo (issue 11). The path
// below is what `nix-store --add-fixed --recursive sha256 src` gives for a directory `src` holding
// a file `a` with "hello\n" (Nix 2.8), with its `nix path-info --json`.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { caProvesStorePath } from '../../../src/nix/content-address.ts';
import type { PathInfo } from '../../../src/nix/narinfo.ts';

const SOURCE: PathInfo = {
  storePath: '/nix/store/yx6zyqqwqi4vzssch0gpw20pmycsy9s8-src',
  narHash: 'sha256-lYm+o5HTptO6iNGG6L41EMhGGyh2L9gt5P7stJH8gqI=',
  narSize: 288,
  references: [],
  sigs: [],
  ca: 'fixed:r:sha256:18l2zj8v9v7ywhnxhbvn50dldj0h6nzfi1nii2xd79nkj6ivx2cm',
};

test('a recursive sha256 fixed-output path is proven by its CA field', () => {
  assert.equal(caProvesStorePath(SOURCE), true);
});

test('anything that does not match is not a proof', () => {
  const cases: Array<[string, Partial<PathInfo>]> = [
    ['no CA', { ca: undefined }],
    ['another name', { storePath: '/nix/store/yx6zyqqwqi4vzssch0gpw20pmycsy9s8-source' }],
    ['another hash part', { storePath: '/nix/store/0x6zyqqwqi4vzssch0gpw20pmycsy9s8-src' }],
    ['a NarHash other than the CA hash', { narHash: 'sha256:0000000000000000000000000000000000000000000000000000' }],
    ['an added reference', { references: ['0zq8c3rkh4v8rfv6dkl6anw3nn2bcma4-other'] }],
    ['a flat (non-recursive) CA, whose hash is of a file inside the NAR', { ca: 'fixed:sha256:18l2zj8v9v7ywhnxhbvn50dldj0h6nzfi1nii2xd79nkj6ivx2cm' }],
    ['a text CA', { ca: 'text:sha256:18l2zj8v9v7ywhnxhbvn50dldj0h6nzfi1nii2xd79nkj6ivx2cm' }],
    ['a malformed CA hash', { ca: 'fixed:r:sha256:nonsense' }],
  ];
  for (const [what, patch] of cases) assert.equal(caProvesStorePath({ ...SOURCE, ...patch }), false, what);
});
