import type { Kysely, Selectable } from 'kysely';
import {
  appTypeSchema,
  runEndReasonSchema,
  runStatusSchema,
  type AppType,
  type RunEndReason,
  type RunStatus,
} from '#libs/contracts';
import type { ExecutionTables, RunRow } from '../../migrations/index.js';

/** The runs read models as other services (the gateway) read them: rows and typed queries, no migrations. */
export type RunsReadModel = Pick<ExecutionTables, 'runs' | 'run_status_timeline' | 'run_pipelines'>;
export type RunRecord = Selectable<RunRow>;
type Db = Kysely<RunsReadModel>;

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export interface RunFilter {
  jobId?: string;
  status?: string;
}

/** A run of the workspace by id (anything but a UUID is no run). */
export function runById(db: Db, ws: string, runId: string): Promise<RunRecord | undefined> {
  if (!UUID.test(runId)) return Promise.resolve(undefined);
  return db
    .selectFrom('runs')
    .selectAll()
    .where('workspace_id', '=', ws)
    .where('id', '=', runId.toLowerCase())
    .executeTakeFirst();
}

/** A page of the workspace's runs, newest first, with the total. */
export async function listRuns(
  db: Db,
  ws: string,
  filter: RunFilter,
  limit: number,
  offset: number,
): Promise<{ rows: RunRecord[]; total: number }> {
  let q = db.selectFrom('runs').where('workspace_id', '=', ws);
  if (filter.jobId) q = q.where('job_id', '=', filter.jobId);
  if (filter.status) q = q.where('status', '=', filter.status);
  const [rows, count] = await Promise.all([
    q
      .selectAll()
      .orderBy('created_at', 'desc')
      .orderBy('number', 'desc')
      .orderBy('id', 'desc')
      .limit(limit)
      .offset(offset)
      .execute(),
    q.select((eb) => eb.fn.countAll<string>().as('n')).executeTakeFirstOrThrow(),
  ]);
  return { rows, total: Number(count.n) };
}

/** The newest run of each job. */
export async function lastRunsOfJobs(db: Db, jobIds: readonly string[]): Promise<Map<string, RunRecord>> {
  if (jobIds.length === 0) return new Map();
  const rows = await db
    .selectFrom('runs')
    .selectAll()
    .distinctOn('job_id')
    .where('job_id', 'in', [...new Set(jobIds)])
    .orderBy('job_id')
    .orderBy('number', 'desc')
    .execute();
  return new Map(rows.map((r) => [r.job_id, r]));
}

/** A run's status changes in order. */
export function runTimeline(db: Db, runId: string) {
  return db
    .selectFrom('run_status_timeline')
    .select(['status', 'at', 'reason'])
    .where('run_id', '=', runId)
    .orderBy('seq')
    .orderBy('idx')
    .execute();
}

/** What a run's pipelines did (PipelineReported). */
export function runPipelines(db: Db, runId: string) {
  return db
    .selectFrom('run_pipelines')
    .selectAll()
    .where('run_id', '=', runId)
    .orderBy('pipeline_name')
    .execute();
}

/** Where an interactive run's app answers (docs/interactive.md): only while the run is `running`. */
export interface AppAddress {
  type: AppType;
  host: string;
  port: number;
  /** The path prefix the app is served under at that address. */
  basePath: string;
  readyAt: Date;
  idleTimeoutSeconds: number | null;
}

/** A run's app address, or null (not an interactive run, not answering yet, or ended). */
export function appOf(r: RunRecord): AppAddress | null {
  if (r.status !== 'running' || r.app_host === null || r.app_port === null || r.app_base_path === null)
    return null;
  const type = appTypeSchema.safeParse(r.app_type);
  if (!type.success) return null;
  return {
    type: type.data,
    host: r.app_host,
    port: r.app_port,
    basePath: r.app_base_path,
    readyAt: r.app_ready_at ?? r.updated_at,
    idleTimeoutSeconds: r.app_idle_timeout_seconds,
  };
}

/** Why a completed run ended (`idle`: an interactive app stopped for having no open connection). */
export function endReasonOf(r: RunRecord): RunEndReason | null {
  const p = runEndReasonSchema.safeParse(r.end_reason);
  return p.success ? p.data : null;
}

export interface InteractiveApp {
  runId: string;
  number: number;
  status: RunStatus;
  app: AppAddress | null;
  endReason: RunEndReason | null;
  failureReason: string | null;
  message: string | null;
}

/** The newest run of a job (any status) with its app's address while it is running. */
export async function interactiveAppOfJob(
  db: Db,
  ws: string,
  jobId: string,
): Promise<InteractiveApp | undefined> {
  if (!UUID.test(jobId)) return undefined;
  const r = await db
    .selectFrom('runs')
    .selectAll()
    .where('workspace_id', '=', ws)
    .where('job_id', '=', jobId.toLowerCase())
    .orderBy('number', 'desc')
    .limit(1)
    .executeTakeFirst();
  if (!r) return undefined;
  return {
    runId: r.id,
    number: r.number,
    status: runStatusSchema.catch('pending').parse(r.status),
    app: appOf(r),
    endReason: endReasonOf(r),
    failureReason: r.failure_reason,
    message: r.message,
  };
}
