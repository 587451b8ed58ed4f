import type { PushSummary } from '../push/types.ts';

/** The `--json` result of a push (snake_case, like the API). */
export function summaryJson(s: PushSummary): Record<string, unknown> {
  return {
    cache: s.cache,
    paths_total: s.pathsTotal,
    pushed: s.pushed.length,
    skipped_present: s.skippedPresent.length,
    skipped_upstream: s.skippedUpstream.length,
    failed: s.failed.map(({ path, error }) => ({ path, error })),
    bytes_sent: s.bytesSent,
    nar_bytes: s.narBytes,
    bytes_deduplicated: s.bytesDeduplicated,
    seconds: Math.round(s.seconds * 1000) / 1000,
  };
}

/** One human line, e.g. "pushed 3 of 12 paths to main (9 already present, 0 upstream, 1 failed): 4.0 MiB sent for 10.0 MiB of NARs, 60% deduplicated, in 1.2 s". */
export function formatSummary(s: PushSummary): string {
  const parts = [`${s.skippedPresent.length} already present`, `${s.skippedUpstream.length} upstream`];
  if (s.failed.length > 0) parts.push(`${s.failed.length} failed`);
  let line = `pushed ${s.pushed.length} of ${s.pathsTotal} paths to ${s.cache} (${parts.join(', ')})`;
  if (s.pushed.length > 0) {
    line += `: ${formatBytes(s.bytesSent)} sent for ${formatBytes(s.narBytes)} of NARs`;
    const dedup = s.narBytes > 0 ? s.bytesDeduplicated / s.narBytes : 0;
    if (dedup >= 0.01) line += `, ${Math.round(dedup * 100)}% deduplicated`;
  }
  return `${line}, in ${s.seconds.toFixed(1)} s`;
}

export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return i === 0 ? `${n} B` : `${n.toFixed(1)} ${units[i]}`;
}
