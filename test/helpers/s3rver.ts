// Starts s3rver in a child process: it needs `--openssl-legacy-provider` (see s3rver-main.mjs), and a
// separate process keeps its Koa app and its logger out of the test runner.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { HeadBucketCommand, S3Client } from '@aws-sdk/client-s3';
import type { S3StorageConfig } from '../../src/storage/s3.ts';
import { makeTempDir } from './tmp.ts';

const MAIN = fileURLToPath(new URL('./s3rver-main.mjs', import.meta.url));
const CREDENTIALS = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' };

export async function startS3rver(opts?: { bucket?: string }): Promise<{
  endpoint: string;
  bucket: string;
  config: S3StorageConfig;
  stop(): Promise<void>;
  child: import('node:child_process').ChildProcess;
}> {
  const bucket = opts?.bucket ?? 'loft-test';
  const dir = await makeTempDir('loft-s3rver-');
  const child = spawn(process.execPath, ['--openssl-legacy-provider', MAIN, dir.path, bucket], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const exited = once(child, 'exit');
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill();
      await exited;
    }
    await dir.cleanup();
  };
  try {
    const firstLine = createInterface({ input: child.stdout })[Symbol.asyncIterator]().next();
    const line = await Promise.race([
      firstLine,
      exited.then(([code]) => Promise.reject(new Error(`s3rver exited early with code ${code}`))),
    ]);
    const { port } = JSON.parse(String(line.value)) as { port: number };
    const endpoint = `http://127.0.0.1:${port}`;
    const config: S3StorageConfig = { type: 's3', bucket, region: 'us-east-1', endpoint, ...CREDENTIALS };
    await waitUntilAnswering(endpoint, bucket);
    return { endpoint, bucket, config, stop, child };
  } catch (err) {
    await stop();
    throw err;
  }
}

async function waitUntilAnswering(endpoint: string, bucket: string): Promise<void> {
  const client = new S3Client({ endpoint, region: 'us-east-1', forcePathStyle: true, credentials: CREDENTIALS, maxAttempts: 1 });
  try {
    for (let attempt = 0; ; attempt++) {
      try {
        await client.send(new HeadBucketCommand({ Bucket: bucket }));
        return;
      } catch (err) {
        if (attempt >= 50) throw err;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }
  } finally {
    client.destroy();
  }
}

let shared: Promise<S3StorageConfig> | undefined;

/**
 * One s3rver for the whole test process, each caller isolated under its own
 * key prefix. It does not hold the process open: it exits (and removes its
 * data) when the test process ends and its stdin closes.
 */
export function sharedS3Storage(): Promise<S3StorageConfig> {
  shared ??= startS3rver().then(({ config, child }) => {
    child.unref();
    for (const s of [child.stdin, child.stdout]) (s as unknown as { unref?: () => void } | null)?.unref?.();
    return config;
  });
  return shared.then((config) => ({ ...config, prefix: `t-${Math.random().toString(36).slice(2)}/` }));
}
