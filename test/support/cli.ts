import { join } from 'node:path';
import { run } from './exec.js';
import type { TestStack } from './stack.js';

/** Path of Runway's CLI entry point. */
export const runwayCliPath = join(process.cwd(), 'bin/runway.mjs');

/**
 * The environment a test gives `runway`: its own config dir and the stack's admin token, none of
 * the dlt CLI's variables (a developer's shell may have them).
 */
export function runwayCliEnv(s: TestStack, configDir: string): NodeJS.ProcessEnv {
  const e: NodeJS.ProcessEnv = { ...process.env, RUNWAY_CONFIG_DIR: configDir, RUNWAY_TOKEN: s.adminToken };
  delete e.RUNTIME__API_BASE_URL;
  delete e.RUNTIME__AUTH_TOKEN;
  delete e.DLT_PROJECT_DIR;
  return e;
}

/** Runs `runway --api-url <stack> …args` in `cwd` (asynchronously: the stack runs in this process). */
export function runRunwayCli(s: TestStack, cwd: string, configDir: string, ...args: string[]) {
  return run(process.execPath, [runwayCliPath, '--api-url', s.api, ...args], {
    cwd,
    env: runwayCliEnv(s, configDir),
  });
}
