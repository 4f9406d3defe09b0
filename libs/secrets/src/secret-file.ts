import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';

/**
 * Reads a generated credential from its file, or makes one (random, base64url: safe in a URL's
 * userinfo, a nats-server configuration string and an SQL literal) the first time. The file is
 * 0600 in a 0700 directory and holds the value and a newline.
 */
export function ensureSecretFile(file: string, bytes = 24): string {
  const existing = readSecretFile(file);
  if (existing) return existing;
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  const value = randomBytes(bytes).toString('base64url');
  writeFileSync(file, `${value}\n`, { mode: 0o600 });
  chmodSync(file, 0o600);
  return value;
}

/** The value of a credentials file (tightened to 0600 if it was looser), or undefined when absent or empty. */
export function readSecretFile(file: string): string | undefined {
  if (!existsSync(file)) return undefined;
  const value = readFileSync(file, 'utf8').trim();
  if (!value) return undefined;
  chmodSync(file, 0o600);
  return value;
}
