/**
 * The dashboard's API (docs/dashboard-api.md): response schemas, their types and a typed client.
 * Browser-safe: no `node:` imports, only zod and fetch. The gateway documents the same schemas in
 * its OpenAPI document, so the SPA's types and the server's answers cannot drift apart.
 */
import { z } from 'zod';
import { callJson, errorBody } from './json-call.js';

export const runStatuses = [
  'pending',
  'starting',
  'running',
  'finalizing',
  'cancelling',
  'completed',
  'failed',
  'cancelled',
  'skipped',
] as const;
export const runStatusSchema = z.enum(runStatuses);
export type RunStatus = z.infer<typeof runStatusSchema>;
export const runTriggerSchema = z.enum(['manual', 'schedule', 'api']);
export type RunTrigger = z.infer<typeof runTriggerSchema>;

const iso = z.string();

export const runSummarySchema = z.object({
  id: z.string(),
  number: z.number().int(),
  job_id: z.string(),
  job_name: z.string().nullable(),
  status: runStatusSchema,
  trigger: runTriggerSchema,
  profile: z.string(),
  created_at: iso,
  started_at: iso.nullable(),
  ended_at: iso.nullable(),
  duration_ms: z.number().int().nullable(),
  failure_reason: z.string().nullable(),
  deployment_version: z.number().int().nullable(),
});
export type RunSummary = z.infer<typeof runSummarySchema>;

export const jobSummarySchema = z.object({
  id: z.string(),
  name: z.string(),
  kind: z.enum(['batch', 'interactive']),
  entry_point: z.string(),
  description: z.string(),
  schedule: z.string().nullable(),
  timezone: z.string(),
  active: z.boolean(),
  timeout_seconds: z.number().int().nullable(),
  next_fire_at: iso.nullable(),
  version: z.number().int(),
  updated_at: iso,
  last_run: runSummarySchema.nullable(),
});
export type JobSummary = z.infer<typeof jobSummarySchema>;

export const runsPageSchema = z.object({
  items: z.array(runSummarySchema),
  next_cursor: z.string().nullable(),
  limit: z.number().int(),
  total: z.object({ count: z.number().int(), at_least: z.boolean() }).nullable(),
});
export type RunsPage = z.infer<typeof runsPageSchema>;

const count = z.number().int();
export const statusCountsSchema = z.object({
  pending: count,
  starting: count,
  running: count,
  finalizing: count,
  cancelling: count,
  completed: count,
  failed: count,
  cancelled: count,
  skipped: count,
  total: count,
});
export type StatusCounts = z.infer<typeof statusCountsSchema>;

export const overviewSchema = z.object({
  workspace_id: z.string(),
  generated_at: iso,
  jobs: z.array(jobSummarySchema),
  recent_runs: z.array(runSummarySchema),
  counts_24h: statusCountsSchema,
});
export type Overview = z.infer<typeof overviewSchema>;

export const dashboardMessageSchema = z.discriminatedUnion('type', [
  z.object({ type: z.literal('ready'), at: iso }),
  z.object({
    type: z.literal('run.status'),
    run_id: z.string(),
    /** null only when the run's job could not be told (its run not yet in the read model). */
    job_id: z.string().nullable(),
    status: runStatusSchema,
    at: iso,
    reason: z.string().nullable(),
  }),
  z.object({
    type: z.literal('job.changed'),
    job_id: z.string(),
    change: z.enum(['created', 'updated', 'deleted']),
    at: iso,
  }),
  z.object({
    type: z.literal('deployment.created'),
    deployment_id: z.string(),
    version: z.number().int(),
    at: iso,
  }),
]);
export type DashboardMessage = z.infer<typeof dashboardMessageSchema>;

export const schedulePreviewSchema = z.object({
  cron: z.string(),
  timezone: z.string(),
  fires: z.array(z.object({ at: iso, local: z.string(), utc_offset: z.string() })),
  shortest_interval_seconds: z.number().nullable(),
  min_interval_seconds: z.number().int(),
  too_frequent: z.boolean(),
});
export type SchedulePreview = z.infer<typeof schedulePreviewSchema>;

const fileRef = z.object({ path: z.string(), size: z.number().int(), sha256: z.string() });
export const deploymentDiffSchema = z.object({
  from: z.object({ id: z.string(), version: z.number().int() }),
  to: z.object({ id: z.string(), version: z.number().int() }),
  added: z.array(fileRef),
  removed: z.array(fileRef),
  changed: z.array(
    z.object({
      path: z.string(),
      before: z.object({ size: z.number().int(), sha256: z.string() }),
      after: z.object({ size: z.number().int(), sha256: z.string() }),
      binary: z.boolean(),
      too_large: z.boolean(),
      diff: z.string().nullable(),
    }),
  ),
  unchanged: z.number().int(),
});
export type DeploymentDiff = z.infer<typeof deploymentDiffSchema>;

export const configurationProfilesSchema = z.object({
  configuration: z.object({ id: z.string(), version: z.number().int(), created_at: iso }).nullable(),
  profiles: z.array(
    z.object({
      name: z.string(),
      files: z.array(z.string()),
      config_keys: z.array(z.string()),
      secret_keys: z.array(z.string()),
    }),
  ),
  warnings: z.array(z.string()),
});
export type ConfigurationProfiles = z.infer<typeof configurationProfilesSchema>;

export const pipelineInsightsSchema = z.object({
  name: z.string(),
  destination: z.string().nullable(),
  dataset_name: z.string().nullable(),
  last_run_id: z.string(),
  schemas: z.array(
    z.object({
      name: z.string(),
      tables: z.array(
        z.object({
          name: z.string(),
          parent: z.string().nullable(),
          resource: z.string().nullable(),
          write_disposition: z.string().nullable(),
          children: z.array(z.string()),
          columns: z.array(
            z.object({ name: z.string(), data_type: z.string().nullable(), nullable: z.boolean() }),
          ),
        }),
      ),
    }),
  ),
  loads: z.array(
    z.object({
      load_id: z.string(),
      run_id: z.string(),
      completed: z.boolean(),
      status: z.enum(['completed', 'failed']),
      row_counts: z.record(z.string(), z.number()),
      rows_total: z.number(),
      duration_ms: z.number().int().nullable(),
      at: iso,
    }),
  ),
  lineage: z.object({
    nodes: z.array(
      z.object({ id: z.string(), kind: z.enum(['resource', 'table', 'child_table']), label: z.string() }),
    ),
    edges: z.array(z.object({ from: z.string(), to: z.string() })),
  }),
  trend: z.object({
    runs: z.array(
      z.object({
        run_id: z.string(),
        number: z.number().int(),
        status: runStatusSchema,
        started_at: iso.nullable(),
        duration_ms: z.number().int().nullable(),
      }),
    ),
    success_rate: z.number().nullable(),
  }),
});
export type PipelineInsights = z.infer<typeof pipelineInsightsSchema>;

export const createJobBodySchema = z.object({
  name: z.string().min(1).max(500),
  entry_point: z.string().min(1).max(1024),
  kind: z.enum(['batch', 'interactive']).default('batch'),
  description: z.string().max(10_000).default(''),
  schedule: z.string().min(1).max(200).nullable().optional(),
  timezone: z.string().min(1).max(100).optional(),
  timeout_seconds: z
    .number()
    .int()
    .min(1)
    .max(7 * 86_400)
    .nullable()
    .optional(),
});
export type CreateJobBody = z.input<typeof createJobBodySchema>;

export const setScheduleBodySchema = z
  .object({
    schedule: z.string().min(1).max(200).nullable().optional(),
    timezone: z.string().min(1).max(100).optional(),
    active: z.boolean().optional(),
  })
  .refine((b) => b.schedule !== undefined || b.timezone !== undefined || b.active !== undefined, {
    message: 'give schedule, timezone or active',
  });
export type SetScheduleBody = z.input<typeof setScheduleBodySchema>;

/** Query of the runs page (docs/dashboard-api.md §1). */
export interface RunsQuery {
  job?: string;
  status?: readonly RunStatus[];
  trigger?: readonly RunTrigger[];
  created_from?: string;
  created_to?: string;
  started_from?: string;
  started_to?: string;
  cursor?: string;
  limit?: number;
  total?: boolean;
}

/** An error answer of the API (or no answer: status 0). */
export class DashboardApiError extends Error {
  constructor(
    readonly status: number,
    readonly detail: string,
    readonly extra: Record<string, unknown> = {},
  ) {
    super(status ? `${detail} (HTTP ${status})` : detail);
    this.name = 'DashboardApiError';
  }
}

export interface DashboardClientOptions {
  /** The API base, e.g. `/api` in the SPA or `http://127.0.0.1:8080/api`. */
  apiBase: string;
  /** A bearer token; without one the browser's session cookie authenticates. */
  token?: string;
  fetchImpl?: typeof fetch;
  /** Extra headers on every request (e.g. the CSRF header of a cookie session). */
  headers?: () => Record<string, string>;
}

type Query = Record<string, string | number | boolean | readonly string[] | undefined>;

function queryString(q: Query): string {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(q)) {
    if (v === undefined) continue;
    if (Array.isArray(v)) {
      if (v.length > 0) p.set(k, v.join(','));
    } else p.set(k, String(v));
  }
  const s = p.toString();
  return s ? `?${s}` : '';
}

/** One typed function per dashboard route; answers are validated with the schemas above. */
export class DashboardClient {
  readonly apiBase: string;
  private readonly fetchImpl: typeof fetch;

  constructor(private readonly opts: DashboardClientOptions) {
    this.apiBase = opts.apiBase.replace(/\/$/, '');
    this.fetchImpl = opts.fetchImpl ?? ((input, init) => fetch(input, init));
  }

  private headers(extra: Record<string, string> = {}): Record<string, string> {
    const h: Record<string, string> = {
      accept: 'application/json',
      ...(this.opts.headers?.() ?? {}),
      ...extra,
    };
    if (this.opts.token) h.authorization = `Bearer ${this.opts.token}`;
    return h;
  }

  private call<S extends z.ZodType>(
    schema: S,
    method: string,
    path: string,
    body?: unknown,
  ): Promise<z.infer<S>> {
    return callJson(
      this.fetchImpl,
      `${this.apiBase}${path}`,
      { method, headers: this.headers({}), body },
      schema,
      (status, detail, extra) => new DashboardApiError(status, detail, extra),
    );
  }

  private ws(ws: string): string {
    return `/v1/workspaces/${encodeURIComponent(ws)}`;
  }

  runs(ws: string, q: RunsQuery = {}): Promise<RunsPage> {
    return this.call(runsPageSchema, 'GET', `${this.ws(ws)}/runs-page${queryString({ ...q })}`);
  }

  overview(ws: string, q: { recent?: number } = {}): Promise<Overview> {
    return this.call(overviewSchema, 'GET', `${this.ws(ws)}/overview${queryString(q)}`);
  }

  schedulePreview(
    ws: string,
    q: { cron: string; tz?: string; count?: number; after?: string },
  ): Promise<SchedulePreview> {
    return this.call(schedulePreviewSchema, 'GET', `${this.ws(ws)}/schedule/preview${queryString(q)}`);
  }

  deploymentDiff(ws: string, from: number | string, to: number | string): Promise<DeploymentDiff> {
    return this.call(
      deploymentDiffSchema,
      'GET',
      `${this.ws(ws)}/deployments/diff${queryString({ from: String(from), to: String(to) })}`,
    );
  }

  configurationProfiles(ws: string, version: number | 'latest' = 'latest'): Promise<ConfigurationProfiles> {
    return this.call(
      configurationProfilesSchema,
      'GET',
      `${this.ws(ws)}/configurations/profiles${queryString({ version: String(version) })}`,
    );
  }

  pipelineInsights(ws: string, name: string, q: { runs?: number } = {}): Promise<PipelineInsights> {
    return this.call(
      pipelineInsightsSchema,
      'GET',
      `${this.ws(ws)}/pipeline-insights${queryString({ name, ...q })}`,
    );
  }

  createJob(ws: string, body: CreateJobBody): Promise<JobSummary> {
    return this.call(jobSummarySchema, 'POST', `${this.ws(ws)}/jobs`, body);
  }

  setSchedule(ws: string, jobId: string, body: SetScheduleBody): Promise<JobSummary> {
    return this.call(
      jobSummarySchema,
      'PUT',
      `${this.ws(ws)}/jobs/${encodeURIComponent(jobId)}/schedule`,
      body,
    );
  }

  /** The URL of a run's whole log as a file (for `<a href download>`; the cookie authenticates). */
  logDownloadUrl(ws: string, runId: string): string {
    return `${this.apiBase}${this.ws(ws)}/runs/${encodeURIComponent(runId)}/logs/download`;
  }

  /** The URL of the workspace's live updates (for `new EventSource(url, { withCredentials: true })`). */
  eventsUrl(ws: string): string {
    return `${this.apiBase}${this.ws(ws)}/events/stream`;
  }

  /**
   * Follows the workspace's live updates with fetch (works with a bearer token, unlike
   * EventSource) until `signal` aborts or the server ends the stream. Messages that do not parse
   * are skipped.
   */
  async streamEvents(
    ws: string,
    onMessage: (m: DashboardMessage) => void,
    opts: { signal?: AbortSignal } = {},
  ): Promise<void> {
    const res = await this.fetchImpl(this.eventsUrl(ws), {
      headers: this.headers({ accept: 'text/event-stream' }),
      signal: opts.signal,
      credentials: 'same-origin',
    });
    if (!res.ok || !res.body) {
      const text = await res.text();
      const e = errorBody.safeParse(text ? safeJson(text) : undefined);
      throw new DashboardApiError(res.status, e.success ? e.data.detail : res.statusText);
    }
    const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
    let buf = '';
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        buf += value;
        let end: number;
        while ((end = buf.indexOf('\n\n')) >= 0) {
          const block = buf.slice(0, end);
          buf = buf.slice(end + 2);
          const data = block
            .split('\n')
            .filter((l) => l.startsWith('data:'))
            .map((l) => l.slice(5).trimStart())
            .join('\n');
          if (!data) continue;
          const m = dashboardMessageSchema.safeParse(safeJson(data));
          if (m.success) onMessage(m.data);
        }
      }
    } catch (err) {
      if (opts.signal?.aborted) return;
      throw err;
    } finally {
      reader.releaseLock();
    }
  }
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
