// How long the property-based fuzzers run: a few seconds' worth in `npm test`, as long as asked
// for in a soak (LOFT_FUZZ_RUNS=100000 bash test/run.sh test/fuzz, or per file).
import type { Parameters } from 'fast-check';

const runs = Number(process.env.LOFT_FUZZ_RUNS ?? 0);

/** fast-check parameters: `defaultRuns` unless LOFT_FUZZ_RUNS says otherwise; a seed from LOFT_FUZZ_SEED replays a failure. */
export function fuzzParams<T>(defaultRuns: number): Parameters<T> {
  const seed = process.env.LOFT_FUZZ_SEED;
  return { numRuns: runs > 0 ? runs : defaultRuns, ...(seed ? { seed: Number(seed) } : {}) };
}
