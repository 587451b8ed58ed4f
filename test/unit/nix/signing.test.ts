import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { NixFormatError } from '../../../src/nix/errors.ts';
import { narFingerprint } from '../../../src/nix/fingerprint.ts';
import { parseNarInfo } from '../../../src/nix/narinfo.ts';
import { PublicKey, SigningKey, verifyNarInfoSignature } from '../../../src/nix/signing.ts';
import { FIXTURES } from './fixture-trees.ts';

const CACHE_NIXOS_ORG = PublicKey.parse('cache.nixos.org-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY=');

// Published at https://cache.nixos.org/w9yy7v61ipb5rx6i35zq1mvc2iqfmps1.narinfo (hello-2.10).
const HELLO = `StorePath: /nix/store/w9yy7v61ipb5rx6i35zq1mvc2iqfmps1-hello-2.10
URL: nar/15zk4zszw9lgkdkkwy7w11m5vag11n5dhv2i6hj308qpxczvdddx.nar.xz
Compression: xz
FileHash: sha256:15zk4zszw9lgkdkkwy7w11m5vag11n5dhv2i6hj308qpxczvdddx
FileSize: 41232
NarHash: sha256:1mi14cqk363wv368ffiiy01knardmnlyphi6h9xv6dkjz44hk30i
NarSize: 205968
References: 9df65igwjmf2wbw0gbrrgair6piqjgmi-glibc-2.31 w9yy7v61ipb5rx6i35zq1mvc2iqfmps1-hello-2.10
Sig: cache.nixos.org-1:uP5KU8MCmyRnKGlN5oEv6xWJBI5EO/Pf5aFztZuLSz8BpCcZ1fdBnJkVXhBAlxkdm/CemsgQskhwvyd2yghTAg==
`;

// Published at https://cache.nixos.org/syd87l2rxw8cbsxmxl853h0r6pdwhwjr.narinfo (curl-7.82.0-bin); unsorted-looking refs, a deriver.
const CURL = `StorePath: /nix/store/syd87l2rxw8cbsxmxl853h0r6pdwhwjr-curl-7.82.0-bin
URL: nar/05ra3y72i3qjri7xskf9qj8kb29r6naqy1sqpbs3azi3xcigmj56.nar.xz
Compression: xz
FileHash: sha256:05ra3y72i3qjri7xskf9qj8kb29r6naqy1sqpbs3azi3xcigmj56
FileSize: 68852
NarHash: sha256:1b4sb93wp679q4zx9k1ignby1yna3z7c4c2ri3wphylbc2dwsys0
NarSize: 196040
References: 0jqd0rlxzra1rs38rdxl43yh6rxchgc6-curl-7.82.0 6w8g7njm4mck5dmjxws0z1xnrxvl81xa-glibc-2.34-115 j5jxw3iy7bbz4a57fh9g2xm2gxmyal8h-zlib-1.2.12 yxvjs9drzsphm9pcf42a4byzj1kb9m7k-openssl-1.1.1n
Deriver: 5rwxzi7pal3qhpsyfc16gzkh939q1np6-curl-7.82.0.drv
Sig: cache.nixos.org-1:TsTTb3WGTZKphvYdBHXwo6weVILmTytUjLB+vcX89fOjjRicCHmKA4RCPMVLkj6TMJ4GMX3HPVWRdD1hkeKZBQ==
`;

// Made with `nix-store --generate-binary-cache-key loft-test-1`; the narinfos were signed by `nix copy …?secret-key=`.
const SECRET = readFileSync(join(FIXTURES, 'keys', 'loft-test-1.secret'), 'utf8');
const PUBLIC = readFileSync(join(FIXTURES, 'keys', 'loft-test-1.public'), 'utf8');
const CACHE = join(FIXTURES, 'cache');
const nixNarInfos = () =>
  readdirSync(CACHE)
    .filter((f) => f.endsWith('.narinfo'))
    .map((f) => parseNarInfo(readFileSync(join(CACHE, f), 'utf8')));

test('fingerprint has Nix\'s layout with full, sorted reference paths', () => {
  const info = parseNarInfo(HELLO);
  assert.equal(
    narFingerprint(info.storePath, info.narHash, info.narSize, [...info.references].reverse()),
    '1;/nix/store/w9yy7v61ipb5rx6i35zq1mvc2iqfmps1-hello-2.10;sha256:1mi14cqk363wv368ffiiy01knardmnlyphi6h9xv6dkjz44hk30i;205968;' +
      '/nix/store/9df65igwjmf2wbw0gbrrgair6piqjgmi-glibc-2.31,/nix/store/w9yy7v61ipb5rx6i35zq1mvc2iqfmps1-hello-2.10',
  );
  // Any accepted hash form gives the same (nix32) fingerprint.
  const hex = narFingerprint(info.storePath, '0c1ac5ded4d7ffa3e05b0fddb0e47dfea98e5b6d0b6779ba5ac4d87a4d7a1d9e', 1, []);
  assert.match(hex, /;sha256:[0-9a-z]{52};1;$/);
  assert.throws(() => narFingerprint(info.storePath, info.narHash, 0, []), /size 0/);
  assert.throws(() => narFingerprint(info.storePath, info.narHash, 1, ['bad']), NixFormatError);
});

test('real cache.nixos.org-1 signatures verify, and fail once NarSize changes', () => {
  for (const text of [HELLO, CURL]) {
    const info = parseNarInfo(text);
    assert.equal(verifyNarInfoSignature(info, [CACHE_NIXOS_ORG]), true, info.storePath);
    assert.equal(verifyNarInfoSignature({ ...info, narSize: info.narSize + 1 }, [CACHE_NIXOS_ORG]), false);
    assert.equal(verifyNarInfoSignature({ ...info, references: info.references.slice(1) }, [CACHE_NIXOS_ORG]), false);
    assert.equal(verifyNarInfoSignature(info, [PublicKey.parse(PUBLIC)]), false);
    assert.equal(verifyNarInfoSignature(info, []), false);
  }
});

test('signatures are byte-identical to the ones Nix wrote', () => {
  const key = SigningKey.parse(SECRET);
  assert.equal(key.name, 'loft-test-1');
  assert.equal(key.toString(), SECRET.trim());
  assert.equal(key.publicKey().toString(), PUBLIC.trim());
  const infos = nixNarInfos();
  assert.equal(infos.length, 3);
  for (const info of infos) {
    assert.equal(info.sigs.length, 1);
    const fp = narFingerprint(info.storePath, info.narHash, info.narSize, info.references);
    assert.equal(key.sign(fp), info.sigs[0], info.storePath);
    assert.ok(verifyNarInfoSignature(info, [CACHE_NIXOS_ORG, PublicKey.parse(PUBLIC)]));
    assert.ok(!verifyNarInfoSignature({ ...info, narHash: HELLO.match(/NarHash: (.*)/)![1] }, [key.publicKey()]));
  }
});

test('generated keys round-trip through their text form and sign verifiably', () => {
  const key = SigningKey.generate('loft-1');
  const again = SigningKey.parse(key.toString());
  assert.equal(again.toString(), key.toString());
  const pub = PublicKey.parse(key.publicKey().toString());
  const sig = again.sign('hello');
  assert.match(sig, /^loft-1:[A-Za-z0-9+/]{86}==$/);
  assert.equal(key.sign('hello'), sig, 'ed25519 is deterministic');
  assert.ok(pub.verify('hello', sig));
  assert.ok(!pub.verify('hellO', sig));
  assert.ok(!pub.verify('hello', sig.replace('loft-1:', 'other:')), 'different key name');
  assert.ok(!pub.verify('hello', 'loft-1:not-base64!'));
  assert.ok(!pub.verify('hello', 'loft-1:AAAA'));
  assert.ok(!pub.verify('hello', 'no colon'));
});

test('rejects malformed keys and key names', () => {
  const [name, b64] = SECRET.trim().split(':');
  const raw = Buffer.from(b64, 'base64');
  const cases: [() => unknown, RegExp][] = [
    [() => SigningKey.generate(''), /must be non-empty/],
    [() => SigningKey.generate('a:b'), /contain no ':'/],
    [() => SigningKey.parse(b64), /expected 'name:base64'/],
    [() => SigningKey.parse(`:${b64}`), /empty key name/],
    [() => SigningKey.parse(`${name}:${raw.subarray(0, 32).toString('base64')}`), /expected 64 bytes, got 32/],
    [() => SigningKey.parse(`${name}:${b64.slice(0, -4)}!!!!`), /not valid base64/],
    [() => SigningKey.parse(`${name}:${Buffer.concat([raw.subarray(0, 32), Buffer.alloc(32, 1)]).toString('base64')}`), /does not match/],
    [() => PublicKey.parse('cache.nixos.org-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShj='), /base64/],
    [() => PublicKey.parse(`x:${Buffer.alloc(31).toString('base64')}`), /expected 32 bytes, got 31/],
    [() => PublicKey.parse('nocolon'), /expected 'name:base64'/],
  ];
  for (const [fn, message] of cases) {
    assert.throws(fn, (err: unknown) => {
      assert.ok(err instanceof NixFormatError);
      assert.match(err.message, message);
      return true;
    });
  }
});
