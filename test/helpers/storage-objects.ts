// Lists what a server's storage holds the way an operator would see it (the files under a local
// directory, the keys of a bucket under its prefix), without asking Loft: a check that a refused or
// crashed request left nothing behind stays valid whatever layout the storage engine uses.
import { readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import type { StorageConfig } from '../../src/storage/index.ts';

/** Every stored object as `key size`, sorted (a partly written or appended object shows as a size change). */
export async function listStorageObjects(storage: StorageConfig): Promise<string[]> {
  const out: string[] = [];
  if (storage.type === 'local') {
    const walk = async (dir: string): Promise<void> => {
      const entries = await readdir(dir, { withFileTypes: true }).catch((e: NodeJS.ErrnoException) => {
        if (e.code === 'ENOENT') return [];
        throw e;
      });
      for (const e of entries) {
        const full = path.join(dir, e.name);
        if (e.isDirectory()) await walk(full);
        else out.push(`${path.relative(storage.path, full)} ${(await stat(full)).size}`);
      }
    };
    await walk(storage.path);
  } else {
    const client = new S3Client({
      endpoint: storage.endpoint,
      region: storage.region,
      forcePathStyle: true,
      credentials: storage.accessKeyId ? { accessKeyId: storage.accessKeyId, secretAccessKey: storage.secretAccessKey ?? '' } : undefined,
    });
    try {
      let token: string | undefined;
      do {
        const page = await client.send(new ListObjectsV2Command({ Bucket: storage.bucket, Prefix: storage.prefix ?? '', ContinuationToken: token }));
        for (const o of page.Contents ?? []) out.push(`${o.Key!.slice((storage.prefix ?? '').length)} ${o.Size}`);
        token = page.IsTruncated ? page.NextContinuationToken : undefined;
      } while (token !== undefined);
    } finally {
      client.destroy();
    }
  }
  return out.sort();
}
