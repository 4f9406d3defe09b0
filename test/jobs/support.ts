import { readFileSync } from 'node:fs';
import { buildPackage, type BuildFile } from '#libs/archive';
import type { TestStack } from '../support/stack.js';

export type Json = Record<string, unknown>;

/** Uploads a multipart `file` (deployment or configuration package) as the dlt CLI does. */
export async function uploadPackage(
  stack: TestStack,
  kind: 'deployments' | 'configurations',
  files: BuildFile[],
  opts: { workspace?: string; token?: string } = {},
) {
  const form = new FormData();
  const name = kind === 'deployments' ? 'workspace.tar.gz' : 'configurations.tar.gz';
  form.append('file', new Blob([new Uint8Array(buildPackage(files))], { type: 'application/x-tar' }), name);
  const res = await fetch(`${stack.url}/api/v1/workspaces/${opts.workspace ?? stack.workspaceId}/${kind}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${opts.token ?? stack.adminToken}` },
    body: form,
  });
  const text = await res.text();
  if (res.status !== 201) throw new Error(`upload of ${kind} failed: ${res.status} ${text}`);
  return JSON.parse(text) as Json;
}

/** A user with a token, as a member of the admin's workspace (role) or only of their own (no role). */
export async function newUser(stack: TestStack, email: string, role?: 'viewer' | 'member') {
  const u = await stack.call(
    'POST',
    '/api/v1/admin/users',
    role ? { email, workspace_id: stack.workspaceId, role } : { email },
  );
  if (u.status !== 201) throw new Error(`creating ${email}: ${u.status} ${u.text}`);
  const id = (u.json as { id: string }).id;
  const t = await stack.call('POST', `/api/v1/admin/users/${id}/tokens`, { name: 'test' });
  if (t.status !== 201) throw new Error(`token of ${email}: ${t.status} ${t.text}`);
  const token = (t.json as { token: string }).token;
  // The user's own workspace is created from the user's events: under load /me can answer before it exists.
  for (const until = Date.now() + 15_000; ;) {
    const me = await stack.call('GET', '/api/v1/me', undefined, token);
    const workspaceId = (me.json as { default_workspace?: { id?: string } } | undefined)?.default_workspace
      ?.id;
    if (me.status === 200 && workspaceId) return { id, token, workspaceId };
    if (Date.now() > until)
      throw new Error(`/me of ${email} has no default workspace: ${me.status} ${me.text}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

export async function waitForStatus(
  stack: TestStack,
  runId: string,
  statuses: string[],
  timeoutMs = 60_000,
  ws = stack.workspaceId,
): Promise<Json> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const r = await stack.call('GET', `/api/v1/workspaces/${ws}/runs/${runId}`);
    const run = r.json as Json;
    if (r.status === 200 && statuses.includes(run.status as string)) return run;
    if (Date.now() > until)
      throw new Error(
        `run ${runId} did not reach ${statuses.join('|')}: ${r.status} ${r.text.slice(0, 2000)}`,
      );
    await new Promise((res) => setTimeout(res, 100));
  }
}

/** True while the process exists and is not a zombie. */
export function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0];
    return state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
}

/** Creates (or updates) a batch job whose entry point is its name, as the dlt CLI's upsert does. */
export async function createBatchJob(stack: TestStack, name: string, ws = stack.workspaceId): Promise<Json> {
  const r = await stack.call('POST', `/api/v1/workspaces/${ws}/scripts`, {
    name,
    description: '',
    entry_point: name,
    script_type: 'batch',
    active: true,
    profile: null,
    schedule: null,
  });
  if (r.status !== 200 && r.status !== 201) throw new Error(`job ${name}: ${r.status} ${r.text}`);
  return r.json as Json;
}
