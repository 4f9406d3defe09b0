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

/** A job of the workspace (the dlt-compatible REST routes call it a script; this client maps them). */
export interface Job {
  id: string;
  name: string;
  description: string;
  entry_point: string;
  kind: 'batch' | 'interactive';
  /** An interactive job's URL; "" for batch jobs. */
  url: string;
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
  /** Whether the job has a working public link (its URL is shown only when made). */
  public_link_enabled?: boolean;
}

/** A public link change: the URL only right after enable / rotate. */
export interface PublicLink {
  job_id: string;
  job_name: string;
  enabled: boolean;
  public_url: string | null;
}

export interface Run {
  id: string;
  number: number;
  /** Runway's status (a skipped run is `skipped`, not the compatible routes' `cancelled`). */
  status: string;
  trigger: string;
  workspace_id: string;
  profile: string | null;
  date_added: string;
  time_started: string | null;
  time_ended: string | null;
  duration: number | null;
  job_id: string;
  job_version: number;
  deployment_version: number | null;
  configuration_version: number | null;
  exit_code: number | null;
  signal: string | null;
  failure_reason: string | null;
  message: string | null;
  stderr_tail: string[] | null;
  job?: Job;
  status_timeline?: { status: string; at: string; reason: string }[];
  /** Run detail only: what the run's dlt pipelines reported to its beacon (docs/runs-telemetry.md). */
  traces?: PipelineTrace[];
}

/** A dlt pipeline trace a run reported, summarized (known secrets masked). */
export interface PipelineTrace {
  transaction_id: string;
  pipeline_name: string;
  started_at: string | null;
  finished_at: string | null;
  duration_ms: number | null;
  dlt_version: string | null;
  destination: string | null;
  dataset_name: string | null;
  failed: boolean;
  steps: {
    step: string;
    started_at: string | null;
    finished_at: string | null;
    duration_ms: number | null;
    failed: boolean;
  }[];
  load_ids: string[];
  row_counts: Record<string, number>;
  exceptions: { step: string; type: string | null; message: string }[];
  truncated: boolean;
}

/** What a caller sets on a job (unset optional fields keep their value). */
export interface JobInput {
  name: string;
  entry_point: string;
  kind: 'batch' | 'interactive';
  description?: string;
  schedule?: string | null;
  profile?: string | null;
  active?: boolean;
  timeout_seconds?: number | null;
  timezone?: string;
  missed_policy?: 'run_once' | 'skip' | 'run_all';
  overlap_policy?: 'skip' | 'queue' | 'allow';
}

/*
 * The dlt-compatible REST routes' words (script, script_type, script_id …), mapped here and
 * nowhere else in the client.
 */
type ScriptDto = Omit<Job, 'kind' | 'url' | 'last_run'> & {
  script_type: Job['kind'];
  script_url: string;
  last_run?: RunDto | null;
};
type RunDto = Omit<Run, 'job_id' | 'job_version' | 'job'> & {
  runway_status?: string;
  script_id: string;
  script_version: number;
  script_version_id?: string;
  script?: ScriptDto;
};

function jobOf(dto: ScriptDto): Job {
  const { script_type, script_url, last_run, ...rest } = dto;
  return {
    ...rest,
    kind: script_type,
    url: script_url,
    ...(last_run !== undefined ? { last_run: last_run ? runOf(last_run) : null } : {}),
  };
}

function runOf(dto: RunDto): Run {
  const { runway_status, script_id, script_version, script_version_id, script, ...rest } = dto;
  return {
    ...rest,
    status: runway_status ?? rest.status,
    job_id: script_id,
    job_version: script_version,
    ...(script_version_id !== undefined ? { job_version_id: script_version_id } : {}),
    ...(script ? { job: jobOf(script) } : {}),
  };
}

const scriptBody = ({ kind, ...rest }: JobInput) => ({ ...rest, script_type: kind });

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
    let payload: FormData | Uint8Array<ArrayBuffer> | string | undefined;
    if (body instanceof Uint8Array) payload = bytesOf(body);
    else if (body instanceof FormData) payload = body;
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

  listJobs(ws: string, limit = 100, offset = 0) {
    return this.api<Page<ScriptDto>>('GET', `${this.ws(ws)}/scripts?limit=${limit}&offset=${offset}`).then(
      (p) => ({ ...p, items: p.items.map(jobOf) }),
    );
  }
  /** By id or name (names may contain "/"). */
  getJob(ws: string, idOrName: string) {
    return this.api<ScriptDto>(
      'GET',
      `${this.ws(ws)}/scripts/${idOrName.split('/').map(encodeURIComponent).join('/')}`,
    ).then(jobOf);
  }
  /** Deletes a job (it stops firing and cannot be run; its versions and runs stay). */
  deleteJob(ws: string, idOrName: string) {
    return this.api<{ id: string; name: string; deleted: true }>(
      'DELETE',
      `${this.ws(ws)}/scripts/${idOrName.split('/').map(encodeURIComponent).join('/')}`,
    );
  }
  /** Creates or updates a job by name; every change makes a new version. */
  upsertJob(ws: string, job: JobInput) {
    return this.api<ScriptDto>('POST', `${this.ws(ws)}/scripts`, scriptBody(job)).then(jobOf);
  }
  /** Enables (409 when there is one), rotates or revokes an interactive job's public link. */
  changePublicLink(ws: string, job: string, action: 'enable' | 'rotate' | 'revoke') {
    return this.api<PublicLink>('POST', `${this.ws(ws)}/public-links`, { job, action });
  }
  /** Runs, newest first; `job`: of a job by id or name, a deleted job's included. */
  listRuns(
    ws: string,
    opts: { jobId?: string; job?: string; status?: string; limit?: number; offset?: number } = {},
  ) {
    const q = new URLSearchParams({ limit: String(opts.limit ?? 100), offset: String(opts.offset ?? 0) });
    if (opts.jobId) q.set('script_id', opts.jobId);
    if (opts.job) q.set('script', opts.job);
    if (opts.status) q.set('status', opts.status);
    return this.api<Page<RunDto>>('GET', `${this.ws(ws)}/runs?${q.toString()}`).then((p) => ({
      ...p,
      items: p.items.map(runOf),
    }));
  }
  /** RequestRun: a run of a job (by id or name). */
  requestRun(ws: string, jobIdOrName: string, profile?: string | null) {
    return this.api<RunDto>('POST', `${this.ws(ws)}/runs`, {
      script_id_or_name: jobIdOrName,
      ...(profile !== undefined ? { profile } : {}),
    }).then(runOf);
  }
  getRun(ws: string, runId: string) {
    return this.api<RunDto>('GET', `${this.ws(ws)}/runs/${encodeURIComponent(runId)}`).then(runOf);
  }
  runLogs(ws: string, runId: string) {
    return this.api<{ run: RunDto; logs: string | null }>(
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
    return this.api<RunDto>('POST', `${this.ws(ws)}/runs/${encodeURIComponent(runId)}/cancel`).then(runOf);
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
  createUser(email: string, workspaceId?: string, role?: string, password?: string) {
    return this.api<{ id: string; email: string; password_set?: boolean }>('POST', '/v1/admin/users', {
      email,
      ...(workspaceId ? { workspace_id: workspaceId } : {}),
      ...(role ? { role } : {}),
      ...(password !== undefined ? { password } : {}),
    });
  }
  /** An admin sets a user's dashboard password (`user`: id or email); the user's sessions end. */
  setUserPassword(user: string, password: string) {
    return this.api<{ user_id: string; email: string; password_set: boolean }>(
      'POST',
      `/v1/admin/users/${encodeURIComponent(user)}/password`,
      { password },
    );
  }
  /** `user`: a user id or email; owners only; the last owner keeps the role (409). */
  changeMemberRole(ws: string, user: string, role: string) {
    return this.api<Member>('PATCH', `${this.ws(ws)}/members/${encodeURIComponent(user)}`, { role });
  }
  listUsers() {
    return this.api<Page<UserInfo>>('GET', '/v1/admin/users');
  }
  listAlertRules(ws: string) {
    return this.api<{ items: AlertRule[] }>('GET', `${this.ws(ws)}/alerts/rules`);
  }
  /** The answer holds the webhook's signing secret: shown this once. */
  createAlertRule(ws: string, rule: AlertRuleCreate) {
    return this.api<AlertRule & { webhook_secret: string | null }>(
      'POST',
      `${this.ws(ws)}/alerts/rules`,
      rule,
    );
  }
  deleteAlertRule(ws: string, ruleId: string) {
    return this.api<{ id: string; deleted: boolean }>(
      'DELETE',
      `${this.ws(ws)}/alerts/rules/${encodeURIComponent(ruleId)}`,
    );
  }
  testAlertRule(ws: string, ruleId: string) {
    return this.api<{ alert_id: string }>(
      'POST',
      `${this.ws(ws)}/alerts/rules/${encodeURIComponent(ruleId)}/test`,
    );
  }
  /** Deliveries of alerts, newest first; `status: 'dead'` lists the dead letters. */
  listAlertDeliveries(ws: string, filter: { status?: string; rule_id?: string; limit?: number } = {}) {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(filter)) if (v !== undefined) q.set(k, String(v));
    const qs = q.toString();
    return this.api<{ items: AlertDelivery[] }>(
      'GET',
      `${this.ws(ws)}/alerts/deliveries${qs ? `?${qs}` : ''}`,
    );
  }
}

/** An alert rule (never its webhook secret). */
export interface AlertRule {
  id: string;
  workspace_id: string;
  name: string;
  job_id: string | null;
  job_name: string | null;
  conditions: string[];
  failures_in_row: number;
  webhook_url: string | null;
  email_to: string[] | null;
  rate_limit: { max: number; window_seconds: number };
  enabled: boolean;
  created_by: string;
  date_added: string;
  date_updated: string;
}

export interface AlertRuleCreate {
  name: string;
  /** A job's id or name; null: every job. */
  job?: string | null;
  conditions: string[];
  failures_in_row?: number;
  webhook_url?: string | null;
  email_to?: string[] | null;
  rate_limit?: { max: number; window_seconds: number };
}

export interface AlertDelivery {
  alert_id: string;
  channel: string;
  rule_id: string;
  run_id: string | null;
  job_name: string | null;
  conditions: string[];
  message: string;
  suppressed: number;
  status: string;
  attempts: number;
  last_error: string | null;
  raised_at: string;
  date_updated: string;
}

function multipart(content: Uint8Array, filename: string): FormData {
  const form = new FormData();
  form.append('file', new Blob([bytesOf(content)], { type: 'application/x-tar' }), filename);
  return form;
}

/** The same bytes typed as the DOM's BodyInit wants them (no copy unless shared memory). */
function bytesOf(b: Uint8Array): Uint8Array<ArrayBuffer> {
  return b.buffer instanceof ArrayBuffer
    ? new Uint8Array(b.buffer, b.byteOffset, b.byteLength)
    : new Uint8Array(b);
}
