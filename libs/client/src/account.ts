/**
 * The browser-session and account routes the web dashboard uses (docs/dashboard-auth.md): sign-in
 * providers, the cookie session, the caller's sessions, members, tokens, workspaces, device
 * approval and the pipeline list. Browser-safe (zod and fetch only); answers are validated.
 */
import { z } from 'zod';
import { callJson } from './json-call.js';

export const accountUserSchema = z.object({
  id: z.string(),
  email: z.string(),
  name: z.string(),
  admin: z.boolean(),
});
export type AccountUser = z.infer<typeof accountUserSchema>;

export const roleSchema = z.enum(['owner', 'member', 'viewer']);
export type Role = z.infer<typeof roleSchema>;

export const providersSchema = z.object({
  password: z.boolean(),
  oidc: z.object({ name: z.string() }).nullable(),
});
export type Providers = z.infer<typeof providersSchema>;

export const signedInSchema = z.object({
  user: accountUserSchema,
  csrf_token: z.string(),
  expires_at: z.string(),
});

export const sessionInfoSchema = z.object({
  user: accountUserSchema,
  workspaces: z.array(z.object({ id: z.string(), name: z.string(), role: roleSchema })),
  session: z
    .object({ id: z.string(), created_at: z.string(), expires_at: z.string(), idle_expires_at: z.string() })
    .nullable(),
  csrf_token: z.string().nullable().optional(),
});
export type SessionInfo = z.infer<typeof sessionInfoSchema>;

export const mySessionSchema = z.object({
  id: z.string(),
  method: z.string(),
  created_at: z.string(),
  last_seen_at: z.string().nullable(),
  expires_at: z.string(),
  idle_expires_at: z.string(),
  user_agent: z.string().nullable(),
  ip: z.string().nullable(),
  current: z.boolean(),
});
export type MySession = z.infer<typeof mySessionSchema>;

export const memberSchema = z.object({
  user_id: z.string(),
  email: z.string(),
  role: roleSchema,
  date_added: z.string().optional(),
});
export type WorkspaceMember = z.infer<typeof memberSchema>;

export const apiTokenSchema = z.object({
  id: z.string(),
  name: z.string(),
  state: z.enum(['active', 'revoked', 'expired']),
  expires_at: z.string().nullable(),
  revoked_at: z.string().nullable(),
  date_added: z.string(),
});
export type ApiToken = z.infer<typeof apiTokenSchema>;

export const workspaceSchema = z.object({
  id: z.string(),
  name: z.string(),
  date_added: z.string(),
});

export const deviceClientSchema = z
  .object({ user_agent: z.string(), ip: z.string(), requested_at: z.string() })
  .nullable();
export const deviceLoginSchema = z.object({
  user_code: z.string(),
  status: z.string(),
  client: deviceClientSchema,
});
export type DeviceLoginInfo = z.infer<typeof deviceLoginSchema>;

export const pipelineListSchema = z.object({
  items: z.array(
    z.object({
      name: z.string(),
      destination: z.string().nullable(),
      dataset_name: z.string().nullable(),
      last_run_id: z.string().nullable(),
      date_updated: z.string(),
    }),
  ),
});
export type PipelineListItem = z.infer<typeof pipelineListSchema>['items'][number];

export const fileEntrySchema = z.object({
  path: z.string(),
  type: z.string().optional(),
  size: z.number(),
  sha256: z.string().nullable(),
  target: z.string().optional(),
});
export const deploymentVersionSchema = z.object({
  id: z.string(),
  version: z.number().int(),
  content_hash: z.string(),
  file_count: z.number().int(),
  size: z.number(),
  created_by: z.string(),
  date_added: z.string(),
});
export type DeploymentVersion = z.infer<typeof deploymentVersionSchema>;

/** An error answer of the API (status 0: no answer); `detail` is meant for a person. */
export class AccountApiError extends Error {
  constructor(
    readonly status: number,
    readonly detail: string,
  ) {
    super(status ? `${detail} (HTTP ${status})` : detail);
    this.name = 'AccountApiError';
  }
}

/** The value of the readable CSRF cookie (sent back as X-CSRF-Token on unsafe requests). */
export function csrfFromCookie(cookie: string): string {
  const m = /(?:^|; )runway_csrf=([^;]+)/.exec(cookie);
  return m?.[1] ? decodeURIComponent(m[1]) : '';
}

export interface AccountClientOptions {
  /** The origin's base, e.g. `http://127.0.0.1:8080` or `` for the page's own origin. */
  base: string;
  /** Headers for every request (the CSRF header of a cookie session). */
  headers?: () => Record<string, string>;
  fetchImpl?: typeof fetch;
}

export class AccountClient {
  private readonly fetchImpl: typeof fetch;

  constructor(private readonly opts: AccountClientOptions) {
    this.fetchImpl = opts.fetchImpl ?? ((input, init) => fetch(input, init));
  }

  private call<S extends z.ZodType>(
    schema: S,
    method: string,
    path: string,
    body?: unknown,
  ): Promise<z.infer<S>> {
    const headers = { accept: 'application/json', ...(this.opts.headers?.() ?? {}) };
    return callJson(
      this.fetchImpl,
      `${this.opts.base}${path}`,
      { method, headers, body },
      schema,
      (status, detail) => new AccountApiError(status, detail),
    );
  }

  private ws(ws: string): string {
    return `/api/v1/workspaces/${encodeURIComponent(ws)}`;
  }

  providers() {
    return this.call(providersSchema, 'GET', '/auth/providers');
  }
  signIn(email: string, password: string) {
    return this.call(signedInSchema, 'POST', '/auth/session', { email, password });
  }
  session() {
    return this.call(sessionInfoSchema, 'GET', '/auth/session');
  }
  signOut() {
    return this.call(z.object({ signed_out: z.boolean() }), 'DELETE', '/auth/session');
  }
  mySessions() {
    return this.call(z.object({ items: z.array(mySessionSchema) }), 'GET', '/api/v1/me/sessions');
  }
  revokeSession(id: string) {
    return this.call(
      z.object({ id: z.string(), revoked: z.boolean() }),
      'DELETE',
      `/api/v1/me/sessions/${encodeURIComponent(id)}`,
    );
  }
  changePassword(current: string, next: string) {
    return this.call(z.object({ changed: z.boolean() }), 'POST', '/api/v1/me/password', {
      current,
      new: next,
    });
  }
  device(userCode: string) {
    return this.call(deviceLoginSchema, 'GET', `/api/v1/device/${encodeURIComponent(userCode)}`);
  }
  approveDevice(userCode: string) {
    return this.call(deviceLoginSchema, 'POST', '/api/v1/device/approve', { user_code: userCode });
  }
  denyDevice(userCode: string) {
    return this.call(deviceLoginSchema, 'POST', '/api/v1/device/deny', { user_code: userCode });
  }
  workspace(ws: string) {
    return this.call(workspaceSchema, 'GET', this.ws(ws));
  }
  renameWorkspace(ws: string, name: string) {
    return this.call(workspaceSchema, 'POST', `${this.ws(ws)}/rename`, { name });
  }
  members(ws: string) {
    return this.call(z.array(memberSchema), 'GET', `${this.ws(ws)}/members`);
  }
  addMember(ws: string, email: string, role: Role) {
    return this.call(memberSchema, 'POST', `${this.ws(ws)}/members`, { email, role });
  }
  setMemberRole(ws: string, user: string, role: Role) {
    return this.call(
      memberSchema.omit({ date_added: true }),
      'PATCH',
      `${this.ws(ws)}/members/${encodeURIComponent(user)}`,
      { role },
    );
  }
  removeMember(ws: string, user: string) {
    return this.call(
      z.object({ removed: z.boolean() }),
      'DELETE',
      `${this.ws(ws)}/members/${encodeURIComponent(user)}`,
    );
  }
  tokens() {
    return this.call(z.object({ items: z.array(apiTokenSchema) }), 'GET', '/api/v1/tokens');
  }
  createToken(name: string, expiresInDays?: number) {
    return this.call(
      z.object({ id: z.string(), token: z.string(), expires_at: z.string().nullable() }),
      'POST',
      '/api/v1/tokens',
      { name, ...(expiresInDays ? { expires_in_days: expiresInDays } : {}) },
    );
  }
  revokeToken(id: string) {
    return this.call(
      z.object({ id: z.string(), state: z.string() }),
      'POST',
      `/api/v1/tokens/${encodeURIComponent(id)}/revoke`,
    );
  }
  pipelines(ws: string) {
    return this.call(pipelineListSchema, 'GET', `${this.ws(ws)}/pipelines`);
  }
  deployments(ws: string) {
    return this.call(
      z.object({ items: z.array(deploymentVersionSchema) }),
      'GET',
      `${this.ws(ws)}/deployments?limit=200`,
    );
  }
  deploymentFiles(ws: string, version: number) {
    return this.call(
      z.object({ items: z.array(fileEntrySchema) }),
      'GET',
      `${this.ws(ws)}/deployments/${version}/files`,
    );
  }
  /** The URL of one stored file's content (by its SHA-256). */
  blobUrl(ws: string, sha256: string): string {
    return `${this.opts.base}${this.ws(ws)}/blobs/${sha256}`;
  }
}
