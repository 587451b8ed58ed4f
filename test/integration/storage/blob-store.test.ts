// One behavioural suite for every BlobStore backend, plus the few checks that only make sense for one.
import assert from 'node:assert/strict';
import { createHash, createHmac, randomBytes } from 'node:crypto';
import { readdir, utimes, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { expectLength } from '../../../src/storage/expect-length.ts';
import { createBlobStore, type StorageConfig } from '../../../src/storage/index.ts';
import { LocalBlobStore } from '../../../src/storage/local.ts';
import { S3BlobStore } from '../../../src/storage/s3.ts';
import { BlobNotFoundError, type BlobStore } from '../../../src/storage/types.ts';
import { startS3rver } from '../../helpers/s3rver.ts';
import { makeTempDir } from '../../helpers/tmp.ts';

const MiB = 1024 * 1024;

interface Backend {
  name: 'local' | 's3';
  /** Returns the store config and a teardown; small list pages make S3 paging run on a few dozen keys. */
  start(): Promise<{ config: StorageConfig; stop(): Promise<void> }>;
}

const backends: Backend[] = [
  {
    name: 'local',
    async start() {
      const dir = await makeTempDir('loft-local-store-');
      return { config: { type: 'local', path: dir.path }, stop: dir.cleanup };
    },
  },
  {
    name: 's3',
    async start() {
      const s3 = await startS3rver();
      return { config: { ...s3.config, listPageSize: 7, redirect: true }, stop: s3.stop };
    },
  },
];

/** Yields `total` random bytes in 1 MiB chunks, then fails if failWith is set (a client that went away). */
function randomStream(total: number, failWith?: Error): { stream: Readable; sha256: () => string } {
  const hash = createHash('sha256');
  async function* chunks(): AsyncGenerator<Buffer> {
    for (let sent = 0; sent < total; ) {
      const chunk = randomBytes(Math.min(MiB, total - sent));
      hash.update(chunk);
      sent += chunk.length;
      yield chunk;
    }
    if (failWith) throw failWith;
  }
  return { stream: Readable.from(chunks(), { objectMode: false }), sha256: () => hash.digest('hex') };
}

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/** Keys and sizes listed under prefix; every entry's modification time must be recent. */
async function listAll(store: BlobStore, prefix: string): Promise<Array<{ key: string; size: number }>> {
  const out: Array<{ key: string; size: number }> = [];
  for await (const { key, size, modifiedAt } of store.list(prefix)) {
    assert.ok(Math.abs(Date.now() - modifiedAt) < 10 * 60_000, `${key}: modifiedAt ${modifiedAt} is not recent`);
    out.push({ key, size });
  }
  return out.sort((a, b) => (a.key < b.key ? -1 : 1));
}

for (const backend of backends) {
  describe(`BlobStore contract: ${backend.name}`, () => {
    let store: BlobStore;
    let stop: () => Promise<void>;

    before(async () => {
      const started = await backend.start();
      store = await createBlobStore(started.config);
      stop = started.stop;
    });
    after(() => stop());

    it('reports its kind', () => {
      assert.equal(store.kind, backend.name);
    });

    it('round-trips a Buffer through get, getBuffer and head', async () => {
      const body = randomBytes(1000);
      assert.deepEqual(await store.put('chunks/aa/basic-1.zst', body), { size: 1000 });
      assert.deepEqual(await readAll(await store.get('chunks/aa/basic-1.zst')), body);
      assert.deepEqual(await store.getBuffer('chunks/aa/basic-1.zst'), body);
      assert.deepEqual(await store.head('chunks/aa/basic-1.zst'), { size: 1000 });
    });

    it('stores a streamed body and reports its size', async () => {
      const { stream, sha256 } = randomStream(3 * MiB + 17);
      assert.deepEqual(await store.put('chunks/aa/stream-1.zst', stream), { size: 3 * MiB + 17 });
      const back = await store.getBuffer('chunks/aa/stream-1.zst');
      assert.equal(createHash('sha256').update(back).digest('hex'), sha256());
    });

    it('stores an empty object', async () => {
      assert.deepEqual(await store.put('chunks/aa/empty.zst', Buffer.alloc(0)), { size: 0 });
      assert.deepEqual(await store.head('chunks/aa/empty.zst'), { size: 0 });
      assert.equal((await store.getBuffer('chunks/aa/empty.zst')).length, 0);
    });

    it('serves byte ranges (start only, and start+end inclusive)', async () => {
      const body = Buffer.from('0123456789abcdefghij');
      await store.put('chunks/ab/range.zst', body);
      assert.equal((await readAll(await store.get('chunks/ab/range.zst', { start: 15 }))).toString(), 'fghij');
      assert.equal((await readAll(await store.get('chunks/ab/range.zst', { start: 6, end: 10 }))).toString(), '6789a');
      assert.equal((await readAll(await store.get('chunks/ab/range.zst', { start: 19, end: 30 }))).toString(), 'j');
      await assert.rejects(store.get('chunks/ab/range.zst', { start: 5, end: 4 }), RangeError);
    });

    it('reports a missing key as BlobNotFoundError (get, getBuffer) and null (head)', async () => {
      const missing = 'chunks/zz/missing.zst';
      await assert.rejects(store.get(missing), (err: unknown) => err instanceof BlobNotFoundError && err.key === missing);
      await assert.rejects(store.get(missing, { start: 1 }), BlobNotFoundError);
      await assert.rejects(store.getBuffer(missing), BlobNotFoundError);
      assert.equal(await store.head(missing), null);
    });

    it('deletes present keys and ignores absent ones', async () => {
      await store.put('chunks/ac/del-1.zst', Buffer.from('x'));
      await store.put('chunks/ac/del-2.zst', Buffer.from('y'));
      await store.delete(['chunks/ac/del-1.zst', 'chunks/ac/del-2.zst', 'chunks/ac/never.zst', 'chunks/nodir/never.zst']);
      assert.equal(await store.head('chunks/ac/del-1.zst'), null);
      assert.equal(await store.head('chunks/ac/del-2.zst'), null);
      await store.delete(['chunks/ac/del-1.zst']); // a GC retry
      await store.delete([]);
    });

    it('lists keys under a prefix across pages', async () => {
      const keys = Array.from({ length: 25 }, (_, i) => `listing/${i % 2 ? 'aa' : 'ab'}/k${String(i).padStart(2, '0')}.zst`);
      await Promise.all(keys.map((key, i) => store.put(key, Buffer.alloc(i))));
      await store.put('listingx/aa/outside.zst', Buffer.from('not under listing/'));

      const all = await listAll(store, 'listing/');
      assert.deepEqual(all, keys.map((key, i) => ({ key, size: i })).sort((a, b) => (a.key < b.key ? -1 : 1)));
      assert.deepEqual((await listAll(store, 'listing/a')).length, 25);
      assert.deepEqual(
        (await listAll(store, 'listing/aa/k0')).map((e) => e.key),
        ['listing/aa/k01.zst', 'listing/aa/k03.zst', 'listing/aa/k05.zst', 'listing/aa/k07.zst', 'listing/aa/k09.zst'],
      );
      assert.deepEqual(await listAll(store, 'nothing-here/'), []);
      assert.equal((await listAll(store, 'listing')).length, 26);
    });

    it('leaves nothing under the key when a small body stream fails midway', async () => {
      const { stream } = randomStream(100 * 1024, new Error('client went away'));
      await assert.rejects(store.put('chunks/ad/broken-small.zst', stream), /client went away/);
      assert.equal(await store.head('chunks/ad/broken-small.zst'), null);
      assert.deepEqual(await listAll(store, 'chunks/ad/'), []);
    });

    it('leaves nothing under the key when a large (multipart) body stream fails midway', async () => {
      const { stream } = randomStream(20 * MiB, new Error('client went away late'));
      await assert.rejects(store.put('chunks/ad/broken-large.zst', stream), /client went away late/);
      assert.equal(await store.head('chunks/ad/broken-large.zst'), null);
      assert.deepEqual(await listAll(store, 'chunks/ad/'), []);
    });

    it('round-trips a 40 MB streamed object intact', async () => {
      const size = 40 * 1000 * 1000;
      const { stream, sha256 } = randomStream(size);
      assert.deepEqual(await store.put('nars/big/forty-mb.nar', stream), { size });
      const expected = sha256();
      assert.deepEqual(await store.head('nars/big/forty-mb.nar'), { size });
      const hash = createHash('sha256');
      for await (const chunk of await store.get('nars/big/forty-mb.nar')) hash.update(chunk as Buffer);
      assert.equal(hash.digest('hex'), expected);
      await store.delete(['nars/big/forty-mb.nar']);
    });

    it('keeps content intact when the same key is put concurrently with identical bytes', async () => {
      const body = randomBytes(2 * MiB + 3);
      const results = await Promise.all([
        store.put('chunks/ae/same.zst', body),
        store.put('chunks/ae/same.zst', Readable.from([body.subarray(0, MiB), body.subarray(MiB)], { objectMode: false })),
        store.put('chunks/ae/same.zst', body),
      ]);
      assert.deepEqual(results, [{ size: body.length }, { size: body.length }, { size: body.length }]);
      assert.deepEqual(await store.getBuffer('chunks/ae/same.zst'), body);
      assert.deepEqual(await listAll(store, 'chunks/ae/'), [{ key: 'chunks/ae/same.zst', size: body.length }]);
    });

    it('rejects invalid keys and prefixes with a clear message', async () => {
      const invalid = ['', '../escape', 'a/../b', 'a/..', '/abs', 'a//b', 'a/b/', 'Upper/case', 'a b', 'a\\b', '.tmp-x', 'a/.hidden', 'ok/é'];
      for (const key of invalid) {
        await assert.rejects(store.put(key, Buffer.from('x')), /invalid blob key/, `put ${JSON.stringify(key)}`);
        await assert.rejects(store.get(key), /invalid blob key/, `get ${JSON.stringify(key)}`);
        await assert.rejects(store.getBuffer(key), /invalid blob key/);
        await assert.rejects(store.head(key), /invalid blob key/);
        await assert.rejects(store.delete(['chunks/aa/fine.zst', key]), /invalid blob key/);
      }
      await assert.rejects(listAll(store, '../'), /invalid blob key prefix/);
      await assert.rejects(listAll(store, '/chunks'), /invalid blob key prefix/);
    });

    it('passes its health check', async () => {
      await store.check();
    });
  });
}

describe('LocalBlobStore specifics', () => {
  it('stores key a/b/c at <path>/a/b/c and sweeps only stale temporary files', async () => {
    const dir = await makeTempDir('loft-local-layout-');
    try {
      const store = new LocalBlobStore({ type: 'local', path: dir.path });
      await store.put('chunks/ab/cdef-1.zst', Buffer.from('payload'));
      assert.deepEqual(await readdir(path.join(dir.path, 'chunks', 'ab')), ['cdef-1.zst']);

      const stale = path.join(dir.path, 'chunks', 'ab', '.tmp-stale');
      const fresh = path.join(dir.path, 'chunks', 'ab', '.tmp-fresh');
      await writeFile(stale, 'left by a crash');
      await writeFile(fresh, 'still being written');
      const twoHoursAgo = new Date(Date.now() - 2 * 3600_000);
      await utimes(stale, twoHoursAgo, twoHoursAgo);

      assert.deepEqual(await listAll(store, ''), [{ key: 'chunks/ab/cdef-1.zst', size: 7 }]);
      assert.equal(await store.sweepTemporaryFiles(3600_000), 1);
      assert.deepEqual((await readdir(path.join(dir.path, 'chunks', 'ab'))).sort(), ['.tmp-fresh', 'cdef-1.zst']);
    } finally {
      await dir.cleanup();
    }
  });

  it('leaves no temporary file behind when a body fails', async () => {
    const dir = await makeTempDir('loft-local-failed-');
    try {
      const store = new LocalBlobStore({ type: 'local', path: dir.path });
      await assert.rejects(store.put('chunks/ab/x.zst', randomStream(MiB, new Error('boom')).stream), /boom/);
      assert.deepEqual(await readdir(path.join(dir.path, 'chunks', 'ab')), []);
    } finally {
      await dir.cleanup();
    }
  });
});

describe('S3BlobStore specifics', () => {
  let s3: Awaited<ReturnType<typeof startS3rver>>;
  before(async () => {
    s3 = await startS3rver({ bucket: 'loft-specifics' });
  });
  after(() => s3.stop());

  it('presigns GET URLs that s3rver accepts, and only those', async () => {
    const store = new S3BlobStore({ ...s3.config, redirect: true, prefix: 'cache1/' });
    const body = randomBytes(4096);
    await store.put('chunks/ab/presigned.zst', body);
    assert.ok(store.presignGet);
    const url = await store.presignGet('chunks/ab/presigned.zst', 60);
    assert.match(url, /\/loft-specifics\/cache1\/chunks\/ab\/presigned\.zst\?/);
    const ok = await fetch(url);
    assert.equal(ok.status, 200);
    assert.deepEqual(Buffer.from(await ok.arrayBuffer()), body);

    // s3rver does not check V4 signatures, so check them against an independent implementation.
    assert.equal(sigV4QuerySignatureValid(url, 'S3RVER'), true);
    assert.equal(sigV4QuerySignatureValid(url.replace('presigned.zst', 'presigned.zsx'), 'S3RVER'), false);
    assert.match(url, /X-Amz-Expires=60&/);
  });

  it('checks presigned URLs with a verifier that reproduces the AWS documentation example', () => {
    // https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-query-string-auth.html
    const example =
      'https://examplebucket.s3.amazonaws.com/test.txt?X-Amz-Algorithm=AWS4-HMAC-SHA256' +
      '&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20130524T000000Z' +
      '&X-Amz-Expires=86400&X-Amz-SignedHeaders=host&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404';
    assert.equal(sigV4QuerySignatureValid(example, 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY'), true);
  });

  it('refuses a range answer that does not match the request', async () => {
    // s3rver 3.7.1 reads "bytes=0-0" as "bytes=0-" and sends the whole object.
    const store = new S3BlobStore(s3.config);
    await store.put('chunks/ab/range-quirk.zst', Buffer.from('0123456789'));
    await assert.rejects(store.get('chunks/ab/range-quirk.zst', { start: 0, end: 0 }), /asked for bytes 0-0, server answered bytes 0-9\/10/);
  });

  it('offers no presignGet unless redirect is enabled', () => {
    assert.equal(new S3BlobStore(s3.config).presignGet, undefined);
  });

  it('keeps keys under the configured prefix and lists them without it', async () => {
    const a = new S3BlobStore({ ...s3.config, prefix: 'tenant-a/' });
    const b = new S3BlobStore({ ...s3.config, prefix: 'tenant-b/' });
    await a.put('chunks/aa/one.zst', Buffer.from('a'));
    assert.equal(await b.head('chunks/aa/one.zst'), null);
    assert.deepEqual(await listAll(a, 'chunks/'), [{ key: 'chunks/aa/one.zst', size: 1 }]);
  });

  it('fails its health check when the bucket does not exist', async () => {
    await assert.rejects(new S3BlobStore({ ...s3.config, bucket: 'no-such-bucket', maxAttempts: 1 }).check());
  });

  it('errors the GET stream when the server cuts the body short', async () => {
    // A fake S3 endpoint that promises 1000 bytes, sends 500 and drops the connection.
    const server = createServer((req, res) => {
      res.writeHead(200, { 'content-length': '1000', 'content-type': 'application/octet-stream' });
      res.write(Buffer.alloc(500), () => res.socket?.destroy());
    });
    server.listen(0, '127.0.0.1');
    await new Promise((resolve) => server.once('listening', resolve));
    try {
      const { port } = server.address() as AddressInfo;
      const store = new S3BlobStore({ ...s3.config, endpoint: `http://127.0.0.1:${port}`, maxAttempts: 1 });
      await assert.rejects(async () => readAll(await store.get('chunks/ab/cut.zst')));
    } finally {
      server.close();
    }
  });
});

/** Recomputes a SigV4 query-string signature (host as the only signed header, unsigned payload). */
function sigV4QuerySignatureValid(url: string, secretAccessKey: string): boolean {
  const parsed = new URL(url);
  const params = [...parsed.searchParams].filter(([name]) => name !== 'X-Amz-Signature');
  const encode = (v: string) => encodeURIComponent(v).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
  const query = params.map(([n, v]) => [encode(n), encode(v)]).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([n, v]) => `${n}=${v}`).join('&');
  assert.equal(parsed.searchParams.get('X-Amz-SignedHeaders'), 'host');
  const canonicalRequest = ['GET', parsed.pathname, query, `host:${parsed.host}`, '', 'host', 'UNSIGNED-PAYLOAD'].join('\n');
  const date = parsed.searchParams.get('X-Amz-Date') ?? '';
  const scope = (parsed.searchParams.get('X-Amz-Credential') ?? '').split('/').slice(1).join('/');
  const stringToSign = ['AWS4-HMAC-SHA256', date, scope, createHash('sha256').update(canonicalRequest).digest('hex')].join('\n');
  const hmac = (key: string | Buffer, data: string) => createHmac('sha256', key).update(data).digest();
  const [day, region, service, terminator] = scope.split('/');
  const signingKey = hmac(hmac(hmac(hmac(`AWS4${secretAccessKey}`, day), region), service), terminator);
  return createHmac('sha256', signingKey).update(stringToSign).digest('hex') === parsed.searchParams.get('X-Amz-Signature');
}

describe('expectLength', () => {
  it('errors a stream that ends early instead of ending it cleanly', async () => {
    const short = expectLength(Readable.from([Buffer.alloc(10)], { objectMode: false }), 20, 'blob k');
    await assert.rejects(readAll(short), /blob k: body ended after 10 of 20 bytes/);
  });

  it('errors a stream that is longer than announced', async () => {
    await assert.rejects(readAll(expectLength(Readable.from([Buffer.alloc(30)], { objectMode: false }), 20, 'k')), /30 of 20/);
  });

  it('passes a complete stream through and forwards source errors', async () => {
    const whole = expectLength(Readable.from([Buffer.from('abc'), Buffer.from('de')], { objectMode: false }), 5, 'k');
    assert.equal((await readAll(whole)).toString(), 'abcde');
    const failing = Readable.from((async function* () { yield Buffer.from('ab'); throw new Error('socket reset'); })(), { objectMode: false });
    await assert.rejects(readAll(expectLength(failing, 5, 'k')), /socket reset/);
  });
});
