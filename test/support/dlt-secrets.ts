import { mkdirSync, rmSync, statSync } from 'node:fs';

/** As root, every dlt CLI keeps its login token in this one file, shared by every root process. */
export const dltGlobalSecrets = '/var/dlt/secrets.toml';
const lockDir = '/var/dlt/.runway-test-login.lock';

/**
 * Runs `fn` (a CLI login up to reading the token it wrote to `dltGlobalSecrets`) while holding a
 * cross-process lock, so two test files logging in at once (dlt-cli.test.ts, dlt-cli-026.test.ts,
 * run three files at a time) never read each other's token. A lock older than 5 minutes is stale.
 */
export async function withDltLoginLock<T>(fn: () => Promise<T>): Promise<T> {
  mkdirSync('/var/dlt', { recursive: true });
  const until = Date.now() + 300_000;
  for (;;) {
    try {
      mkdirSync(lockDir);
      break;
    } catch {
      const age = Date.now() - (statSync(lockDir, { throwIfNoEntry: false })?.mtimeMs ?? Date.now());
      if (age > 300_000) rmSync(lockDir, { recursive: true, force: true });
      else if (Date.now() > until) throw new Error(`${lockDir} held for 5 minutes`);
      else await new Promise((r) => setTimeout(r, 250));
    }
  }
  try {
    return await fn();
  } finally {
    rmSync(lockDir, { recursive: true, force: true });
  }
}
