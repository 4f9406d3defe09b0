import { join } from 'node:path';
import { run } from './exec.js';
import type { TestStack } from './stack.js';

/** The unmodified `dlt` CLI of dlt 1.26.0 + dlt-runtime 0.26.1 (.venv-026, requirements-026.txt). */
export const dlt026Bin = join(process.cwd(), '.venv-026', 'bin', 'dlt');

/**
 * A JWT of this stack's WorkOS-style device flow (the one dlt-runtime 0.26.1's `login` uses),
 * approved by the stack's admin, fetched over HTTP: the CLI's own login (which writes the shared
 * /var/dlt/secrets.toml as root) is tested in dlt-cli-026.test.ts; here the token goes in the
 * environment (RUNTIME__AUTH_TOKEN) and no file outside the test's directory is written.
 */
export async function deviceFlowJwt026(s: TestStack): Promise<string> {
  const started = await fetch(`${s.auth}/v1/workos/device-flow/code`, { method: 'POST' });
  if (started.status !== 201) throw new Error(`device code: ${started.status} ${await started.text()}`);
  const device = (await started.json()) as { device_code: string; user_code: string };
  const approved = await s.call('POST', '/api/v1/device/approve', { user_code: device.user_code });
  if (approved.status !== 201) throw new Error(`approve: ${approved.status} ${approved.text}`);
  const issued = await fetch(`${s.auth}/v1/workos/device-flow/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ device_code: device.device_code }),
  });
  if (issued.status !== 201) throw new Error(`token: ${issued.status} ${await issued.text()}`);
  return ((await issued.json()) as { jwt: string }).jwt;
}

/**
 * Runs `dlt --non-interactive runtime <args>` in `cwd` against the stack, logged in with `jwt`, in
 * workspace `workspaceId`. `BROWSER` makes Python's webbrowser print what the CLI opens
 * (`OPENED <url>`) instead of starting a browser. Output is stdout and stderr together.
 */
export async function runDlt026(
  s: TestStack,
  opts: { cwd: string; jwt: string; workspaceId?: string; env?: Record<string, string> },
  ...args: string[]
): Promise<{ code: number | null; out: string }> {
  const r = await run(dlt026Bin, ['--non-interactive', 'runtime', ...args], {
    cwd: opts.cwd,
    env: {
      ...process.env,
      RUNTIME__API_BASE_URL: s.api,
      RUNTIME__AUTH_BASE_URL: s.auth,
      RUNTIME__DLTHUB_TELEMETRY: 'false',
      RUNTIME__AUTH_TOKEN: opts.jwt,
      RUNTIME__WORKSPACE_ID: opts.workspaceId ?? s.workspaceId,
      DLT_DATA_DIR: join(opts.cwd, '_storage'),
      BROWSER: 'echo OPENED %s',
      COLUMNS: '200',
      ...opts.env,
    },
  });
  return { code: r.code, out: `${r.out}\n${r.err}` };
}
