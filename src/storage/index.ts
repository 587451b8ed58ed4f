import { LocalBlobStore, type LocalStorageConfig } from './local.ts';
import { S3BlobStore, type S3StorageConfig } from './s3.ts';
import type { BlobStore } from './types.ts';

export type StorageConfig = LocalStorageConfig | S3StorageConfig;

export function createBlobStore(cfg: StorageConfig): BlobStore {
  switch (cfg.type) {
    case 'local':
      return new LocalBlobStore(cfg);
    case 's3':
      return new S3BlobStore(cfg);
  }
}
