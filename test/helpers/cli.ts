import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/** The `loft` entry, run from source under tsx. */
export const LOFT_BIN = fileURLToPath(new URL('../../src/bin/loft.ts', import.meta.url));

export interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * `loft ARGS` as a child process with only PATH, HOME and the given variables
 * (no LOFT_* leaks in from the test's environment); stdin is a pipe — never a
 * TTY — fed `input`.
 */
export function runCli(args: string[], env: Record<string, string> = {}, input = ''): Promise<CliRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', LOFT_BIN, ...args], {
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ...env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d));
    child.stderr.on('data', (d: Buffer) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
    child.stdin.end(input);
  });
}
