import { existsSync } from 'node:fs';
import path from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';

/** Debian's Chromium; playwright-core drives it and downloads no browser of its own. */
export const CHROMIUM = process.env.LOFT_TEST_CHROMIUM ?? '/usr/bin/chromium';

/** Why Chromium cannot be used here, or undefined when it can (skipUnless fails under CI=true). */
export function chromiumUnavailable(): string | undefined {
  return existsSync(CHROMIUM) ? undefined : `${CHROMIUM} is not installed (apt-get install -y chromium)`;
}

/** A headless Chromium with a fresh profile in `dir`, talking to loopback only. */
export function launchChromium(dir: string): Promise<BrowserContext> {
  return chromium.launchPersistentContext(path.join(dir, 'chromium-profile'), {
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
    viewport: { width: 1280, height: 900 },
  });
}

/** Console errors and uncaught exceptions of a page, collected for an assertion at the end. */
export function collectErrors(page: Page): string[] {
  const errors: string[] = [];
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(`console: ${m.text()}`);
  });
  page.on('pageerror', (e) => errors.push(`page error: ${e.message}`));
  return errors;
}
