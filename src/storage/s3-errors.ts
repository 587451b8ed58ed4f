// The SDK reports a missing object as NoSuchKey (GET, with an XML body) or NotFound (HEAD, no body).
// Translated here so nothing above the storage layer knows S3 error names.
import { BlobNotFoundError } from './types.ts';

export function isS3NotFound(err: unknown): boolean {
  const name = (err as { name?: unknown } | null)?.name;
  return name === 'NoSuchKey' || name === 'NotFound';
}

/** For `.catch()`: turns a missing-object error into BlobNotFoundError and rethrows anything else. */
export function rethrowS3NotFound(key: string): (err: unknown) => never {
  return (err) => {
    throw isS3NotFound(err) ? new BlobNotFoundError(key) : err;
  };
}
