import {
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { Readable } from 'node:stream';
import { expectLength } from './expect-length.ts';
import { assertValidKey, assertValidPrefix } from './keys.ts';
import { assertValidRange } from './range.ts';
import { rethrowS3NotFound, isS3NotFound } from './s3-errors.ts';
import { presignGetObject } from './s3-presign.ts';
import type { BlobListing, BlobStore, ByteRange } from './types.ts';

export interface S3StorageConfig {
  type: 's3';
  bucket: string;
  region: string;
  endpoint?: string;
  /** Defaults to true when endpoint is set (most S3-compatible servers need path-style). */
  forcePathStyle?: boolean;
  /** Prepended verbatim to every key (include a trailing '/' to get a folder). */
  prefix?: string;
  /** Both or neither; without them the standard AWS credential chain applies. */
  accessKeyId?: string;
  secretAccessKey?: string;
  /** Streams at least this long go through multipart upload. Default 16 MiB. */
  multipartThreshold?: number;
  /** Multipart part size. Default 8 MiB (S3 minimum is 5 MiB). */
  partSize?: number;
  /** Parts uploaded in parallel. Default 4. */
  queueSize?: number;
  /** SDK attempts per request, with backoff. Default 5. */
  maxAttempts?: number;
  /** ListObjectsV2 page size. Default 1000 (the S3 maximum). */
  listPageSize?: number;
  /** Enables presignGet so the server can redirect downloads to the bucket. */
  redirect?: boolean;
  /** Lifetime in seconds of presigned URLs; read by the server when it calls presignGet. */
  presignExpiry?: number;
}

const MiB = 1024 * 1024;
const DELETE_BATCH = 1000; // the DeleteObjects limit

export class S3BlobStore implements BlobStore {
  readonly kind = 's3';
  readonly presignGet?: (key: string, expiresInSeconds: number) => Promise<string>;
  readonly #client: S3Client;
  readonly #bucket: string;
  readonly #prefix: string;
  readonly #multipartThreshold: number;
  readonly #partSize: number;
  readonly #queueSize: number;
  readonly #listPageSize: number;

  constructor(cfg: S3StorageConfig) {
    if ((cfg.accessKeyId === undefined) !== (cfg.secretAccessKey === undefined)) {
      throw new Error('S3 storage: set both accessKeyId and secretAccessKey, or neither');
    }
    this.#client = new S3Client({
      region: cfg.region,
      endpoint: cfg.endpoint,
      forcePathStyle: cfg.forcePathStyle ?? cfg.endpoint !== undefined,
      credentials:
        cfg.accessKeyId !== undefined && cfg.secretAccessKey !== undefined
          ? { accessKeyId: cfg.accessKeyId, secretAccessKey: cfg.secretAccessKey }
          : undefined,
      maxAttempts: cfg.maxAttempts ?? 5,
      // Default checksums (WHEN_SUPPORTED) break on several S3-compatible servers.
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
    });
    this.#bucket = cfg.bucket;
    this.#prefix = cfg.prefix ?? '';
    this.#multipartThreshold = cfg.multipartThreshold ?? 16 * MiB;
    this.#partSize = cfg.partSize ?? 8 * MiB;
    this.#queueSize = cfg.queueSize ?? 4;
    this.#listPageSize = cfg.listPageSize ?? 1000;
    if (cfg.redirect) {
      this.presignGet = (key, expiresInSeconds) =>
        presignGetObject(this.#client, this.#bucket, this.#objectKey(key), expiresInSeconds);
    }
  }

  async put(key: string, body: Readable | Buffer): Promise<{ size: number }> {
    const Key = this.#objectKey(key);
    if (Buffer.isBuffer(body)) return this.#putSingle(Key, body);
    // Buffer up to the threshold to learn whether one PutObject suffices.
    const source = body[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
    const head: Buffer[] = [];
    let headSize = 0;
    while (headSize < this.#multipartThreshold) {
      const next = await source.next();
      if (next.done) return this.#putSingle(Key, Buffer.concat(head));
      head.push(next.value);
      headSize += next.value.length;
    }
    let size = headSize;
    let sourceError: unknown;
    const rest: AsyncIterable<Buffer> = { [Symbol.asyncIterator]: () => source };
    async function* everything(): AsyncGenerator<Buffer> {
      yield* head;
      try {
        for await (const chunk of rest) {
          size += chunk.length;
          yield chunk;
        }
      } catch (err) {
        sourceError = err;
        throw err;
      }
    }
    const upload = new Upload({
      client: this.#client,
      params: { Bucket: this.#bucket, Key, Body: Readable.from(everything(), { objectMode: false }) },
      partSize: this.#partSize,
      queueSize: this.#queueSize,
      // Upload aborts the multipart upload on any failure, so no parts are left behind.
      leavePartsOnError: false,
    });
    try {
      await upload.done();
    } catch (err) {
      await source.return?.(); // releases the caller's stream if the failure came from S3
      // A failed abort replaces the body's error in Upload; report the body's error, with the abort's as cause.
      if (sourceError instanceof Error && err !== sourceError) {
        sourceError.cause ??= err;
        throw sourceError;
      }
      throw err;
    }
    return { size };
  }

  async get(key: string, range?: ByteRange): Promise<Readable> {
    if (range) assertValidRange(range);
    const out = await this.#client
      .send(
        new GetObjectCommand({
          Bucket: this.#bucket,
          Key: this.#objectKey(key),
          Range: range ? `bytes=${range.start}-${range.end ?? ''}` : undefined,
        }),
      )
      .catch(rethrowS3NotFound(key));
    const body = out.Body;
    if (!(body instanceof Readable)) throw new Error(`S3 GetObject ${key}: expected a Node.js stream body`);
    if (out.ContentLength === undefined) {
      body.destroy();
      throw new Error(`S3 GetObject ${key}: response has no Content-Length, so truncation could not be detected`);
    }
    if (range) assertRangeServed(range, out.ContentRange, body, key);
    return expectLength(body, out.ContentLength, `S3 GetObject ${key}`);
  }

  async getBuffer(key: string): Promise<Buffer> {
    const chunks: Buffer[] = [];
    for await (const chunk of await this.get(key)) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks);
  }

  async head(key: string): Promise<{ size: number } | null> {
    try {
      const out = await this.#client.send(new HeadObjectCommand({ Bucket: this.#bucket, Key: this.#objectKey(key) }));
      return { size: out.ContentLength ?? 0 };
    } catch (err) {
      if (isS3NotFound(err)) return null;
      throw err;
    }
  }

  async delete(keys: string[]): Promise<void> {
    const objectKeys = keys.map((key) => this.#objectKey(key));
    for (let i = 0; i < objectKeys.length; i += DELETE_BATCH) {
      const out = await this.#client.send(
        new DeleteObjectsCommand({
          Bucket: this.#bucket,
          Delete: { Objects: objectKeys.slice(i, i + DELETE_BATCH).map((Key) => ({ Key })), Quiet: true },
        }),
      );
      // S3 reports missing keys as deleted; some compatible servers report NoSuchKey instead.
      const failed = (out.Errors ?? []).filter((e) => e.Code !== 'NoSuchKey');
      if (failed.length > 0) {
        const first = failed[0];
        throw new Error(`S3 DeleteObjects failed for ${failed.length} key(s), first ${first.Key}: ${first.Code} ${first.Message}`);
      }
    }
  }

  async *list(prefix: string): AsyncIterable<BlobListing> {
    assertValidPrefix(prefix);
    let ContinuationToken: string | undefined;
    do {
      const out = await this.#client.send(
        new ListObjectsV2Command({
          Bucket: this.#bucket,
          Prefix: this.#prefix + prefix,
          MaxKeys: this.#listPageSize,
          ContinuationToken,
        }),
      );
      for (const object of out.Contents ?? []) {
        if (object.Key === undefined) continue;
        yield {
          key: object.Key.slice(this.#prefix.length),
          size: object.Size ?? 0,
          modifiedAt: object.LastModified?.getTime() ?? 0,
        };
      }
      ContinuationToken = out.IsTruncated ? out.NextContinuationToken : undefined;
    } while (ContinuationToken !== undefined);
  }

  async check(): Promise<void> {
    await this.#client.send(new HeadBucketCommand({ Bucket: this.#bucket }));
  }

  async #putSingle(Key: string, body: Buffer): Promise<{ size: number }> {
    await this.#client.send(
      new PutObjectCommand({ Bucket: this.#bucket, Key, Body: body, ContentLength: body.length }),
    );
    return { size: body.length };
  }

  #objectKey(key: string): string {
    assertValidKey(key);
    return this.#prefix + key;
  }
}

/** A server that ignores or misreads Range must not hand back the wrong bytes as if they were the range. */
function assertRangeServed(range: ByteRange, contentRange: string | undefined, body: Readable, key: string): void {
  const served = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(contentRange ?? '');
  const size = served && served[3] !== '*' ? Number(served[3]) : Infinity;
  const expectedEnd = Math.min(range.end ?? Infinity, size - 1);
  const endOk = expectedEnd === Infinity || Number(served?.[2]) === expectedEnd; // open range of unknown size
  if (!served || Number(served[1]) !== range.start || !endOk) {
    body.destroy();
    throw new Error(
      `S3 GetObject ${key}: asked for bytes ${range.start}-${range.end ?? ''}, server answered ${contentRange ?? 'without Content-Range'}`,
    );
  }
}
