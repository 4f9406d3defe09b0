/** TypeScript SDK for Runway's REST API (the compatible /v1 routes plus Runway's own). */
import { FollowError, followSse, type FollowOptions, type FollowResult } from './follow.js';

export {
  FollowError,
  followSse,
  isAbortError,
  logEndSchema,
  logLineSchema,
  SseParser,
  sleep,
  type FollowOptions,
  type FollowResult,
  type LogEnd,
  type LogLine,
  type SseMessage,
} from './follow.js';

export class ClientError extends Error {
  constructor(
    readonly status: number,
    readonly detail: string,
    readonly extra: Record<string, unknown> = {},
  ) {
    super(status ? `${detail} (HTTP ${status})` : detail);
    this.name = 'ClientError';
  }
}

export interface ClientOptions {
  apiBase: string;
  authBase?: string;
  token?: string;
  fetchImpl?: typeof fetch;
}

export interface Deployment {
  id: string;
  workspace_id: string;
  version: number;
  content_hash: string;
  file_count: number;
  file_names: string;
  size: number;
  created_by: string;
  date_added: string;
  date_updated: string;
}

export interface Configuration extends Deployment {
  profiles: string;
  warnings?: string[];
  profile_keys?: Record<string, string[]>;
}

export interface Page<T> {
  items: T[];
  limit?: number;
  offset?: number;
  total?: number;
}

export interface Me {
  user_id: string;
  email: string;
  default_workspace: { id: string; name: string; date_added: string };
  workspaces?: { id: string; name: string; role: string }[];
}

export interface TokenInfo {
  id: string;
  name: string;
  user_id: string;
  state: 'active' | 'revoked' | 'expired';
  expires_at: string | null;
  revoked_at: string | null;
  parent_id: string | null;
  date_added: string;
}

export interface UserInfo {
  id: string;
  email: string;
  name: string;
  admin: boolean;
  disabled: boolean;
  date_added: string;
  date_disabled: string | null;
}

export interface Member {
  user_id: string;
  email: string;
  role: string;
  date_added: string;
}

export interface DeviceLogin {
  user_code: string;
  status: string;
  client: { user_agent: string; ip: string; requested_at: string } | null;
}

export interface FileRef {
  path: string;
  size: number;
  sha256: string;
}

export interface Script {
  id: string;
  name: string;
  description: string;
  entry_point: string;
  script_type: 'batch' | 'interactive';
  script_url: string;
  version: number;
  active: boolean;
  workspace_id: string;
  date_added: string;
  date_updated: string;
  schedule: string | null;
  profile: string | null;
  next_scheduled_run: string | null;
  timezone?: string;
  missed_policy?: 'run_once' | 'skip' | 'run_all';
  overlap_policy?: 'skip' | 'queue' | 'allow';
  timeout_seconds: number | null;
  last_run?: Run | null;
}

export interface Run {
  id: string;
  number: number;
  /** Runway's status (this client puts runway_status here: `skipped` is not turned into `cancelled`). */
  status: string;
  /** The compatible API's own field for it (the `status` field there shows a skipped run as cancelled). */
  runway_status?: string;
  trigger: string;
  workspace_id: string;
  profile: string | null;
  date_added: string;
  time_started: string | null;
  time_ended: string | null;
  duration: number | null;
  script_id: string;
  script_version: number;
  deployment_version: number | null;
  configuration_version: number | null;
  exit_code: number | null;
  signal: string | null;
  failure_reason: string | null;
  message: string | null;
  stderr_tail: string[] | null;
  script?: Script;
  status_timeline?: { status: string; at: string; reason: string }[];
}

export interface UpsertScript {
  name: string;
  entry_point: string;
  script_type: 'batch' | 'interactive';
  description?: string;
  schedule?: string | null;
  profile?: string | null;
  active?: boolean;
  timeout_seconds?: number | null;
  timezone?: string;
  missed_policy?: 'run_once' | 'skip' | 'run_all';
  overlap_policy?: 'skip' | 'queue' | 'allow';
}

/** A run as this client reports it: Runway's status (runway_status) in `status`. */
function runOf(r: Run): Run {
  const withStatus = r.runway_status ? { ...r, status: r.runway_status } : r;
  return withStatus.script ? { ...withStatus, script: scriptOf(withStatus.script) } : withStatus;
}

function scriptOf(s: Script): Script {
  return s.last_run ? { ...s, last_run: runOf(s.last_run) } : s;
}

export const TERMINAL_RUN_STATUSES = ['completed', 'failed', 'cancelled', 'skipped'];

/** Derives the auth base from an API base ending in /api (Runway serves both from one origin). */
export function authBaseFor(apiBase: string): string {
  return apiBase.replace(/\/api\/?$/, '/auth');
}

export class RunwayClient {
  readonly apiBase: string;
  readonly authBase: string;
  private readonly fetchImpl: typeof fetch;

  constructor(private readonly opts: ClientOptions) {
    this.apiBase = opts.apiBase.replace(/\/$/, '');
    this.authBase = (opts.authBase ?? authBaseFor(this.apiBase)).replace(/\/$/, '');
    this.fetchImpl = opts.fetchImpl ?? fetch;
  }

  withToken(token: string): RunwayClient {
    return new RunwayClient({ ...this.opts, token });
  }

  async request<T>(
    method: string,
    url: string,
    body?: unknown,
    headers: Record<string, string> = {},
  ): Promise<T> {
    const h: Record<string, string> = { accept: 'application/json', ...headers };
    if (this.opts.token) h.authorization = `Bearer ${this.opts.token}`;
    let payload: FormData | Uint8Array | string | undefined;
    if (body instanceof Uint8Array || body instanceof FormData) payload = body;
    else if (body !== undefined) {
      h['content-type'] = 'application/json';
      payload = JSON.stringify(body);
    }
    let res: Response;
    try {
      res = await this.fetchImpl(url, { method, headers: h, body: payload });
    } catch (err) {
      const cause =
        (err as { cause?: { code?: string } }).cause?.code ??
        (err instanceof Error ? err.message : String(err));
      throw new ClientError(0, `cannot reach Runway at ${url}: ${cause}`);
    }
    const text = await res.text();
    let json: unknown;
    try {
      json = text ? JSON.parse(text) : undefined;
    } catch {
      json = undefined;
    }
    if (!res.ok) {
      const b = json as { detail?: unknown; extra?: Record<string, unknown> } | undefined;
      throw new ClientError(
        res.status,
        typeof b?.detail === 'string' ? b.detail : text.slice(0, 200) || res.statusText,
        b?.extra ?? {},
      );
    }
    return json as T;
  }

  api<T>(method: string, path: string, body?: unknown, headers?: Record<string, string>) {
    return this.request<T>(method, `${this.apiBase}${path}`, body, headers);
  }

  auth<T>(method: string, path: string, body?: unknown) {
    return this.request<T>(method, `${this.authBase}${path}`, body);
  }

  ping() {
    return this.api<{ message: string }>('GET', '/v1/ping');
  }
  me() {
    return this.api<Me>('GET', '/v1/me');
  }
  deviceCode() {
    return this.auth<{ device_code: string; user_code: string; verification_uri: string; interval: number }>(
      'POST',
      '/v1/github/device-flow/code',
    );
  }
  /** One poll; undefined while the login is still pending. */
  async deviceToken(deviceCode: string): Promise<{ email: string; id: string; jwt: string } | undefined> {
    try {
      return await this.auth('POST', '/v1/github/device-flow/token', { device_code: deviceCode });
    } catch (err) {
      if (err instanceof ClientError && err.status !== 400 && err.status !== 0) return undefined;
      throw err;
    }
  }
  /** Which client asked for a pending login (owners only). */
  describeDevice(userCode: string) {
    return this.api<DeviceLogin>('GET', `/v1/device/${encodeURIComponent(userCode)}`);
  }
  approveDevice(userCode: string) {
    return this.api<DeviceLogin & { approved: boolean; email: string }>('POST', '/v1/device/approve', {
      user_code: userCode,
    });
  }

  private ws(workspaceId: string) {
    return `/v1/workspaces/${encodeURIComponent(workspaceId)}`;
  }
  listDeployments(ws: string, limit = 100, offset = 0) {
    return this.api<Page<Deployment>>('GET', `${this.ws(ws)}/deployments?limit=${limit}&offset=${offset}`);
  }
  /** The latest deployment, or undefined when there is none yet. */
  async latestDeployment(ws: string): Promise<Deployment | undefined> {
    try {
      return await this.api<Deployment>('GET', `${this.ws(ws)}/deployments/latest`);
    } catch (err) {
      if (err instanceof ClientError && err.status === 404 && /deployment/i.test(err.detail))
        return undefined;
      throw err;
    }
  }
  getDeployment(ws: string, idOrVersion: string | number) {
    return this.api<Deployment>('GET', `${this.ws(ws)}/deployments/${idOrVersion}`);
  }
  deploymentFiles(ws: string, idOrVersion: string | number) {
    return this.api<Page<FileRef>>('GET', `${this.ws(ws)}/deployments/${idOrVersion}/files`);
  }
  syncPlan(ws: string, files: FileRef[]) {
    return this.api<{ missing: string[] }>('POST', `${this.ws(ws)}/deployments/sync/plan`, { files });
  }
  putBlob(ws: string, sha256: string, content: Uint8Array) {
    return this.api<unknown>('PUT', `${this.ws(ws)}/blobs/${sha256}`, content, {
      'content-type': 'application/octet-stream',
    });
  }
  /** Many blobs at once: an uncompressed tar whose members are named by their SHA-256. */
  putBlobs(ws: string, tar: Uint8Array) {
    return this.api<{ stored: number; created: number; bytes: number }>('POST', `${this.ws(ws)}/blobs`, tar, {
      'content-type': 'application/x-tar',
    });
  }
  syncCommit(ws: string, files: FileRef[]) {
    return this.api<Deployment & { created?: boolean }>('POST', `${this.ws(ws)}/deployments/sync/commit`, {
      files,
    });
  }
  uploadDeployment(ws: string, tarGz: Uint8Array) {
    return this.api<Deployment>('POST', `${this.ws(ws)}/deployments`, multipart(tarGz, 'workspace.tar.gz'));
  }

  listConfigurations(ws: string, limit = 100, offset = 0) {
    return this.api<Page<Configuration>>(
      'GET',
      `${this.ws(ws)}/configurations?limit=${limit}&offset=${offset}`,
    );
  }
  async latestConfiguration(ws: string): Promise<Configuration | undefined> {
    try {
      return await this.api<Configuration>('GET', `${this.ws(ws)}/configurations/latest`);
    } catch (err) {
      if (err instanceof ClientError && err.status === 404 && /configuration/i.test(err.detail))
        return undefined;
      throw err;
    }
  }
  getConfiguration(ws: string, idOrVersion: string | number) {
    return this.api<Configuration>('GET', `${this.ws(ws)}/configurations/${idOrVersion}`);
  }
  /** Uploads the .dlt package; no new version when nothing changed. */
  syncConfiguration(ws: string, tarGz: Uint8Array) {
    return this.api<Configuration & { created?: boolean }>(
      'POST',
      `${this.ws(ws)}/configurations/sync`,
      multipart(tarGz, 'configurations.tar.gz'),
    );
  }

  listScripts(ws: string, limit = 100, offset = 0) {
    return this.api<Page<Script>>('GET', `${this.ws(ws)}/scripts?limit=${limit}&offset=${offset}`).then(
      (p) => ({ ...p, items: p.items.map(scriptOf) }),
    );
  }
  /** By id or name (names may contain "/"). */
  getScript(ws: string, idOrName: string) {
    return this.api<Script>(
      'GET',
      `${this.ws(ws)}/scripts/${idOrName.split('/').map(encodeURIComponent).join('/')}`,
    ).then(scriptOf);
  }
  /** Deletes a job (it stops firing and cannot be run; its versions and runs stay). */
  deleteScript(ws: string, idOrName: string) {
    return this.api<{ id: string; name: string; deleted: true }>(
      'DELETE',
      `${this.ws(ws)}/scripts/${idOrName.split('/').map(encodeURIComponent).join('/')}`,
    );
  }
  upsertScript(ws: string, body: UpsertScript) {
    return this.api<Script>('POST', `${this.ws(ws)}/scripts`, body).then(scriptOf);
  }
  listRuns(ws: string, opts: { scriptId?: string; status?: string; limit?: number; offset?: number } = {}) {
    const q = new URLSearchParams({ limit: String(opts.limit ?? 100), offset: String(opts.offset ?? 0) });
    if (opts.scriptId) q.set('script_id', opts.scriptId);
    if (opts.status) q.set('status', opts.status);
    return this.api<Page<Run>>('GET', `${this.ws(ws)}/runs?${q.toString()}`).then((p) => ({
      ...p,
      items: p.items.map(runOf),
    }));
  }
  createRun(ws: string, scriptIdOrName: string, profile?: string | null) {
    return this.api<Run>('POST', `${this.ws(ws)}/runs`, {
      script_id_or_name: scriptIdOrName,
      ...(profile !== undefined ? { profile } : {}),
    }).then(runOf);
  }
  getRun(ws: string, runId: string) {
    return this.api<Run>('GET', `${this.ws(ws)}/runs/${encodeURIComponent(runId)}`).then(runOf);
  }
  runLogs(ws: string, runId: string) {
    return this.api<{ run: Run; logs: string | null }>(
      'GET',
      `${this.ws(ws)}/runs/${encodeURIComponent(runId)}/logs`,
    ).then((r) => ({ ...r, run: runOf(r.run) }));
  }
  /**
   * Follows a run's log live over SSE until its end (see followSse): each line once, in order,
   * resuming after dropped connections. 4xx answers (unknown run, …) throw a ClientError.
   */
  async followRunLogs(ws: string, runId: string, opts: FollowOptions): Promise<FollowResult> {
    const headers: Record<string, string> = {};
    if (this.opts.token) headers.authorization = `Bearer ${this.opts.token}`;
    try {
      return await followSse(
        `${this.apiBase}${this.ws(ws)}/runs/${encodeURIComponent(runId)}/logs/stream`,
        headers,
        opts,
        this.fetchImpl,
      );
    } catch (err) {
      if (err instanceof FollowError) throw new ClientError(err.status, err.detail);
      throw err;
    }
  }
  cancelRun(ws: string, runId: string) {
    return this.api<Run>('POST', `${this.ws(ws)}/runs/${encodeURIComponent(runId)}/cancel`).then(runOf);
  }

  listTokens() {
    return this.api<Page<TokenInfo>>('GET', '/v1/tokens');
  }
  createToken(name: string, expiresInDays?: number) {
    return this.api<{ id: string; token: string; expires_at: string | null }>('POST', '/v1/tokens', {
      name,
      ...(expiresInDays ? { expires_in_days: expiresInDays } : {}),
    });
  }
  createTokenFor(user: string, name: string, expiresInDays?: number) {
    return this.api<{ id: string; token: string; expires_at: string | null }>(
      'POST',
      `/v1/admin/users/${encodeURIComponent(user)}/tokens`,
      {
        name,
        ...(expiresInDays ? { expires_in_days: expiresInDays } : {}),
      },
    );
  }
  revokeToken(id: string) {
    return this.api<{ id: string; state: string }>('POST', `/v1/tokens/${encodeURIComponent(id)}/revoke`);
  }
  /** Every token of the instance (admins), optionally of one user (id or email) and in one state. */
  listAllTokens(filter: { user?: string; state?: string } = {}) {
    const q = new URLSearchParams(filter);
    const qs = q.toString();
    return this.api<Page<TokenInfo & { email: string }>>('GET', `/v1/admin/tokens${qs ? `?${qs}` : ''}`);
  }
  disableUser(user: string, reason?: string) {
    return this.api<UserInfo>(
      'POST',
      `/v1/admin/users/${encodeURIComponent(user)}/disable`,
      reason ? { reason } : {},
    );
  }
  enableUser(user: string) {
    return this.api<UserInfo>('POST', `/v1/admin/users/${encodeURIComponent(user)}/enable`, {});
  }
  listMembers(ws: string) {
    return this.api<Member[]>('GET', `${this.ws(ws)}/members`);
  }
  addMember(ws: string, email: string, role: string) {
    return this.api<Member>('POST', `${this.ws(ws)}/members`, { email, role });
  }
  /** `user`: a user id or email. */
  removeMember(ws: string, user: string) {
    return this.api<{ workspace_id: string; user_id: string; email: string; removed: boolean }>(
      'DELETE',
      `${this.ws(ws)}/members/${encodeURIComponent(user)}`,
    );
  }
  createUser(email: string, workspaceId?: string, role?: string) {
    return this.api<{ id: string; email: string }>('POST', '/v1/admin/users', {
      email,
      ...(workspaceId ? { workspace_id: workspaceId } : {}),
      ...(role ? { role } : {}),
    });
  }
  listUsers() {
    return this.api<Page<UserInfo>>('GET', '/v1/admin/users');
  }
}

function multipart(content: Uint8Array, filename: string): FormData {
  const form = new FormData();
  form.append('file', new Blob([content], { type: 'application/x-tar' }), filename);
  return form;
}
