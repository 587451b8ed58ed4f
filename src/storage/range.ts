import type { ByteRange } from './types.ts';

/** Rejects ranges that no backend could serve, so both backends fail the same way. */
export function assertValidRange({ start, end }: ByteRange): void {
  if (!Number.isSafeInteger(start) || start < 0 || (end !== undefined && (!Number.isSafeInteger(end) || end < start))) {
    throw new RangeError(`invalid byte range start=${start} end=${end}`);
  }
}
