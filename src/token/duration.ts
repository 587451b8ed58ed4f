const UNIT_SECONDS = { y: 365 * 86400, w: 7 * 86400, d: 86400, h: 3600, m: 60, s: 1 } as const;
type Unit = keyof typeof UNIT_SECONDS;

const FORMAT = /^(?:\d+y)?(?:\d+w)?(?:\d+d)?(?:\d+h)?(?:\d+m)?(?:\d+s)?$/;

/**
 * `90d`, `12h`, `1d12h`, `2w`, `1y` (= 365d) → seconds. Units go largest
 * first, each at most once, so `1h1d` or `5m5m` (likely typos) are errors.
 */
export function parseDuration(s: string): number {
  if (typeof s !== 'string' || s === '' || !FORMAT.test(s)) {
    throw new RangeError(`invalid duration '${String(s).slice(0, 32)}': expected e.g. 90d, 12h, 30m, 45s, 2w, 1y or 1d12h`);
  }
  let total = 0;
  for (const [, n, unit] of s.matchAll(/(\d+)([a-z])/g)) total += Number(n) * UNIT_SECONDS[unit as Unit];
  if (!Number.isSafeInteger(total)) throw new RangeError(`invalid duration '${s.slice(0, 32)}': too large`);
  if (total === 0) throw new RangeError(`invalid duration '${s}': must be greater than zero`);
  return total;
}

/** Seconds → the shortest duration string parseDuration reads back to the same value (`31536000` → `1y`). */
export function formatDuration(seconds: number): string {
  let rest = seconds;
  let out = '';
  for (const [unit, size] of Object.entries(UNIT_SECONDS)) {
    const n = Math.floor(rest / size);
    if (n > 0) out += `${n}${unit}`;
    rest -= n * size;
  }
  return out || '0s';
}
