// How a storage failure is reported to clients, decided where the storage kinds are known: the
// volume is full, the backend is unreachable (after the SDK's retries), or neither (a bug, a bare 500).
import { isS3Unavailable } from './s3-errors.ts';

const FULL = new Set(['ENOSPC', 'EDQUOT']);

export type StorageFault = 'full' | 'unavailable';

export function storageFault(err: unknown): StorageFault | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code === 'string' && FULL.has(code)) return 'full';
  if (isS3Unavailable(err)) return 'unavailable';
  return undefined;
}
