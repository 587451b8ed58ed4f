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

/**
 * A failure of the S3 service (5xx) or of the connection to it (reset, timeout) that outlived the
 * SDK's retries: worth retrying later. The SDK marks every error it throws with `$metadata`; a 4xx
 * (bad credentials, missing bucket) is a configuration problem, not this.
 */
export function isS3Unavailable(err: unknown): boolean {
  if (typeof err !== 'object' || err === null || !('$metadata' in err)) return false;
  const e = err as { $fault?: string; $metadata?: { httpStatusCode?: number } };
  const status = e.$metadata?.httpStatusCode;
  return e.$fault === 'server' || status === undefined || status >= 500;
}
