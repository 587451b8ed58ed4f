// `[storage] redirect = true`: a NAR whose frames are one whole pack object (a NAR that was new when
// pushed and below the pack target) is that .nar.zst in the bucket, so the server answers 302 to a
// presigned URL instead of streaming it; a NAR spread over packs (deduplicated chunks) is streamed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { zstdDecompressSync } from '../../../src/compression/zstd.ts';
import { openDatabase } from '../../../src/db/dialect.ts';
import { parseNarInfo } from '../../../src/nix/narinfo.ts';
import { nixUnavailable, skipUnless } from '../../helpers/env.ts';
import { deterministicBytes, makeNar, randomStorePath, sampleNar, sha256Nix32, uploadPathMeta, type Bytes } from '../../helpers/nar.ts';
import { buildCorpus, closureOf, nix, nixEnv, writeNetrc } from '../../helpers/nix.ts';
import { loftEnv, startLoft, waitFor, type LoftProcess } from '../../helpers/processes.ts';
import { startS3rver } from '../../helpers/s3rver.ts';
import { makeTempDir } from '../../helpers/tmp.ts';

test('S3 redirect mode: NARs stored as one whole pack answer 302 to the bucket, others stream; nix follows', { timeout: 180_000 }, async (t) => {
  const tmp = await makeTempDir('loft-redirect-');
  const s3 = await startS3rver();
  let server: LoftProcess | undefined;
  t.after(async () => {
    await server?.kill('SIGKILL');
    await s3.stop();
    await tmp.cleanup();
  });
  const adminToken = `root-${randomBytes(8).toString('hex')}`;
  const dbUrl = `sqlite:${tmp.path}/loft.db`;
  const config = path.join(tmp.path, 'loft.toml');
  await writeFile(config, '[storage]\ntype = "s3"\nredirect = true\n');
  const env = loftEnv({ databaseUrl: dbUrl, dataDir: tmp.path, adminToken, tokenSecret: randomBytes(32).toString('base64'), s3: s3.config });
  server = await startLoft({ mode: 'api', env, config });
  const base = server.url;
  const auth = { authorization: `Bearer ${adminToken}` };
  const created = await fetch(`${base}/_api/v1/cache-config/redir`, {
    method: 'POST',
    headers: { ...auth, 'content-type': 'application/json' },
    body: JSON.stringify({ is_public: true }),
  });
  const createdText = await created.text();
  assert.equal(created.status, 201, createdText);
  const publicKey = (JSON.parse(createdText) as { public_key: string }).public_key;

  const push = async (nar: Bytes) => {
    const sp = randomStorePath('redirect');
    const res = await fetch(`${base}/_api/v1/upload-path`, {
      method: 'PUT',
      headers: { ...auth, 'content-type': 'application/octet-stream', 'x-loft-nar-info': JSON.stringify(uploadPathMeta('redir', sp.path, nar)) },
      body: nar,
    });
    assert.equal(res.status, 200, await res.text());
    return parseNarInfo(await (await fetch(`${base}/redir/${sp.hash}.narinfo`)).text());
  };
  const small = await sampleNar(); // a few KiB: below the minimum chunk size, so one chunk
  const shared = deterministicBytes('redirect-shared', 1024 * 1024);
  const large = await makeNar({ data: shared }); // many chunks, all new: its own pack
  const mixed = await makeNar({ data: shared, more: deterministicBytes('redirect-more', 200_000) });

  const smallInfo = await push(small);
  const redirect = await fetch(`${base}/redir/${smallInfo.url}`, { redirect: 'manual' });
  assert.equal(redirect.status, 302);
  const location = redirect.headers.get('location')!;
  assert.ok(location.startsWith(`${s3.endpoint}/${s3.bucket}/packs/`), location);
  assert.match(location, /X-Amz-Signature=[0-9a-f]{64}/);
  assert.equal(redirect.headers.get('cache-control'), 'no-store');
  const fromBucket = Buffer.from(await (await fetch(location)).arrayBuffer());
  assert.equal(sha256Nix32(fromBucket), smallInfo.fileHash);
  assert.equal(fromBucket.length, smallInfo.fileSize);
  assert.deepEqual(zstdDecompressSync(fromBucket, small.length), small);
  // HEAD still answers here (nix copy --to asks it before uploading), and the .nar form streams.
  const head = await fetch(`${base}/redir/${smallInfo.url}`, { method: 'HEAD', redirect: 'manual' });
  assert.equal(head.status, 200);
  assert.equal(Number(head.headers.get('content-length')), smallInfo.fileSize);
  const plain = await fetch(`${base}/redir/nar/${smallInfo.narHash.slice('sha256:'.length)}.nar`, { redirect: 'manual' });
  assert.equal(plain.status, 200);
  assert.deepEqual(Buffer.from(await plain.arrayBuffer()), small);

  // Many chunks, all new: the pack its push wrote is the whole .nar.zst.
  const largeInfo = await push(large);
  const whole = await fetch(`${base}/redir/${largeInfo.url}`, { redirect: 'manual' });
  assert.equal(whole.status, 302);
  assert.equal(sha256Nix32(Buffer.from(await (await fetch(whole.headers.get('location')!)).arrayBuffer())), largeInfo.fileHash);
  // Mostly deduplicated: the frames sit in two packs and exist nowhere as one object, so the server streams them.
  const mixedInfo = await push(mixed);
  const streamed = await fetch(`${base}/redir/${mixedInfo.url}`, { redirect: 'manual' });
  assert.equal(streamed.status, 200);
  const body = Buffer.from(await streamed.arrayBuffer());
  assert.equal(sha256Nix32(body), mixedInfo.fileHash);

  // The real nix: substitution follows the 302s to the bucket.
  if (!skipUnless(t, nixUnavailable())) return;
  const corpus = await buildCorpus(['all']);
  const netrc = await writeNetrc(tmp.path, base, adminToken);
  await nix(['copy', '--to', `${base}/redir?compression=zstd`, '--option', 'netrc-file', netrc, corpus.all], nixEnv(path.join(tmp.path, 'push')));
  const redirectsBefore = countRedirects(server);
  const storeDir = path.join(tmp.path, 'store');
  const pullEnv = nixEnv(path.join(tmp.path, 'pull'));
  await nix(
    ['--store', storeDir, '-r', corpus.all, '--option', 'substituters', `${base}/redir`,
      '--option', 'trusted-public-keys', publicKey, '--option', 'require-sigs', 'true'],
    pullEnv,
    'nix-store',
  );
  await nix(['store', 'verify', '--store', storeDir, '--trusted-public-keys', publicKey, '-r', corpus.all], pullEnv);
  const closure = await closureOf([corpus.all]);
  assert.deepEqual((await nix(['--store', storeDir, '-qR', corpus.all], pullEnv, 'nix-store')).split('\n').sort(), [...closure].sort());

  // Every NAR of the closure stored as one whole pack was fetched from the bucket, the others from the server.
  const db = openDatabase({ url: dbUrl });
  t.after(() => db.close());
  const hashes = (await nix(['-q', '--hash', ...closure], nixEnv(tmp.path), 'nix-store')).split('\n');
  const layouts = await db.kysely
    .selectFrom('nars')
    .innerJoin('nar_chunks', 'nar_chunks.nar_id', 'nars.id')
    .innerJoin('chunks', 'chunks.id', 'nar_chunks.chunk_id')
    .innerJoin('packs', 'packs.id', 'chunks.pack_id')
    .select(['nars.nar_hash', 'nars.file_size', 'packs.id as pack', 'packs.size', 'chunks.pack_offset'])
    .where('nars.nar_hash', 'in', hashes)
    .execute();
  const wholePack = new Set(
    hashes.filter((h) => {
      const rows = layouts.filter((r) => r.nar_hash === h);
      return new Set(rows.map((r) => r.pack)).size === 1 && rows.some((r) => r.pack_offset === 0) && Number(rows[0].size) === rows[0].file_size;
    }),
  );
  // Per path: two paths with the same contents share a NAR, and nix downloads it for each.
  const oneChunk = hashes.filter((h) => wholePack.has(h)).length;
  assert.ok(oneChunk > 0, `${oneChunk} of ${closure.length} NARs are one whole pack`);
  const logged = server;
  // The log reaches us through a pipe: give the last lines a moment.
  await waitFor('the request log', () => countRedirects(logged) - redirectsBefore >= oneChunk, 2000).catch(() => {});
  assert.equal(countRedirects(server) - redirectsBefore, oneChunk, server.output().slice(-3000));
  t.diagnostic(`nix substituted ${closure.length} paths: ${oneChunk} NARs (one whole pack each) through a redirect to S3, ${closure.length - oneChunk} streamed`);
});

/** NAR downloads the server answered with a redirect, from its request log. */
function countRedirects(server: LoftProcess): number {
  return server.logs('request').filter((r) => r.status === 302).length;
}
