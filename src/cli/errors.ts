// Every client error becomes one readable line and an exit code, decided here and only here.
import { LoftApiError } from '../client/http.ts';

/** Exit codes of the client commands (docs/cli.md#exit-codes). */
export const EXIT = {
  OK: 0,
  /** Usage errors, API errors, anything that stopped the command. */
  ERROR: 1,
  /** `loft push`: some paths failed while others were pushed (returned by the push command itself). */
  PARTIAL: 2,
  /** Interrupted by SIGINT (Ctrl-C). */
  INTERRUPTED: 130,
} as const;

/** A mistake in how the command was called (bad flag combination, malformed argument, no server …). */
export class UsageError extends Error {
  override name = 'UsageError';
}

/** A failure the user can act on, with an optional hint appended to the one-line message. */
export class CliError extends Error {
  override name = 'CliError';
  constructor(
    message: string,
    readonly hint?: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

/** The user interrupted an interactive step (Ctrl-C at a prompt). */
export class InterruptedError extends Error {
  override name = 'InterruptedError';
  constructor() {
    super('interrupted');
  }
}

export function exitCodeOf(e: unknown): number {
  if (e instanceof InterruptedError) return EXIT.INTERRUPTED;
  if (e instanceof Error && (e as Error & { code?: unknown }).code === 'ABORT_ERR') return EXIT.INTERRUPTED;
  return EXIT.ERROR;
}

/** What an API error means to the user, in words (the server's own message when it sent one). */
function describeApiError(e: LoftApiError): string {
  const server = typeof e.body?.message === 'string' ? e.body.message : e.code;
  switch (e.status) {
    case 401:
      return `the server refused the token (HTTP 401: ${server}); check \`loft login\` or LOFT_TOKEN`;
    case 403:
      return `the token is not allowed to do this (HTTP 403: ${server})`;
    default:
      return `${server} (HTTP ${e.status})`;
  }
}

/** The one line printed for `e` (`error: …`), or with `verbose` that line plus the stack and HTTP detail. */
export function formatError(e: unknown, verbose: boolean): string {
  const err = e instanceof Error ? e : new Error(String(e));
  let line: string;
  if (err instanceof LoftApiError) line = describeApiError(err);
  else if (err instanceof CliError && err.hint) line = `${err.message} (${err.hint})`;
  else line = err.message;
  if (!verbose) return `error: ${line.split('\n')[0]}`;
  const out = [`error: ${line}`];
  if (err instanceof LoftApiError) {
    out.push(`  request: ${err.message}`, `  HTTP status: ${err.status}`, `  server body: ${JSON.stringify(err.body ?? null)}`);
  }
  if (err.stack) out.push(err.stack);
  let cause = (err as Error & { cause?: unknown }).cause;
  while (cause instanceof Error) {
    out.push(`caused by: ${cause.stack ?? cause.message}`);
    cause = (cause as Error & { cause?: unknown }).cause;
  }
  return out.join('\n');
}
