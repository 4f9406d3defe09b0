import { existsSync, mkdirSync, readFileSync, writeFileSync, chmodSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { z } from 'zod';

const fileSchema = z.record(z.string(), z.object({ token: z.string(), email: z.string().optional() }));

/** Where the CLI keeps its credentials: `$RUNWAY_CONFIG_DIR` or `~/.runway`, file mode 0600. */
export function credentialsFile(): string {
  return join(process.env.RUNWAY_CONFIG_DIR ?? join(homedir(), '.runway'), 'credentials.json');
}

function readAll(): z.infer<typeof fileSchema> {
  const f = credentialsFile();
  if (!existsSync(f)) return {};
  const parsed = fileSchema.safeParse(JSON.parse(readFileSync(f, 'utf8')));
  return parsed.success ? parsed.data : {};
}

export function loadCredential(apiBase: string): { token: string; email?: string } | undefined {
  return readAll()[apiBase];
}

export function saveCredential(apiBase: string, token: string, email?: string): void {
  const f = credentialsFile();
  const all = readAll();
  all[apiBase] = { token, ...(email ? { email } : {}) };
  mkdirSync(join(f, '..'), { recursive: true, mode: 0o700 });
  writeFileSync(f, JSON.stringify(all, null, 2) + '\n', { mode: 0o600 });
  chmodSync(f, 0o600);
}

export function removeCredential(apiBase: string): boolean {
  const all = readAll();
  if (!all[apiBase]) return false;
  delete all[apiBase];
  writeFileSync(credentialsFile(), JSON.stringify(all, null, 2) + '\n', { mode: 0o600 });
  return true;
}
