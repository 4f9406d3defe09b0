import { existsSync } from 'node:fs';
import { chromium, type Browser } from 'playwright-core';

/** Debian's Chromium, which `npm test` installs (scripts/setup.mjs --browser); browser downloads do not work here. */
export const CHROMIUM = process.env.RUNWAY_CHROMIUM ?? '/usr/bin/chromium';

/**
 * Headless Chromium for the tests that check a page: no sandbox (root), and none of Chromium's own
 * background connections (this machine's closed network refuses them, many at a time).
 */
export function launchChromium(): Promise<Browser> {
  if (!existsSync(CHROMIUM))
    throw new Error(
      `Chromium is not installed at ${CHROMIUM}: npm test installs Debian's chromium as root (apt-get install chromium)`,
    );
  return chromium.launch({
    executablePath: CHROMIUM,
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
  });
}
