import { LocalBlobStore, type LocalStorageConfig } from './local.ts';
import type { S3StorageConfig } from './s3.ts';
import type { BlobStore } from './types.ts';

export type StorageConfig = LocalStorageConfig | S3StorageConfig;

export async function createBlobStore(cfg: StorageConfig): Promise<BlobStore> {
  switch (cfg.type) {
    case 'local':
      return new LocalBlobStore(cfg);
    case 's3': {
      // Loaded only when used: the AWS SDK is a third of an embedded server's heap, which every full GC marks.
      const { S3BlobStore } = await import('./s3.ts');
      return new S3BlobStore(cfg);
    }
  }
}
