import { sql, type Kysely, type Selectable } from 'kysely';
import {
  appTypeSchema,
  runEndReasonSchema,
  runStatusSchema,
  type AppType,
  type RunEndReason,
  type RunStatus,
} from '#libs/contracts';
import type { ExecutionTables, RunRow } from '../../migrations/index.js';
import {
  runStateSummarySchema,
  runTraceSummarySchema,
  type RunStateSummary,
  type RunTraceSummary,
} from '../run.events.js';

/** The runs read models as other services (the gateway) read them: rows and typed queries, no migrations. */
export type RunsReadModel = Pick<
  ExecutionTables,
  'runs' | 'run_status_timeline' | 'run_pipelines' | 'run_telemetry'
>;
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

/** The traces and pipeline states a run reported to its beacon, in the order they were stored. */
export async function runTelemetry(
  db: Db,
  ws: string,
  runId: string,
): Promise<{ traces: RunTraceSummary[]; states: RunStateSummary[] }> {
  const rows = await db
    .selectFrom('run_telemetry')
    .select(['kind', 'summary'])
    .where('workspace_id', '=', ws)
    .where('run_id', '=', runId)
    .orderBy('seq')
    .orderBy('idx')
    .execute();
  const traces: RunTraceSummary[] = [];
  const states: RunStateSummary[] = [];
  for (const r of rows) {
    if (r.kind === 'trace') traces.push(runTraceSummarySchema.parse(r.summary));
    else states.push(runStateSummarySchema.parse(r.summary));
  }
  return { traces, states };
}

/** Runs of the workspace by id, in one query (ids that are no UUID or no run of it are left out). */
export async function runsByIds(
  db: Db,
  ws: string,
  runIds: readonly string[],
): Promise<Map<string, RunRecord>> {
  const ids = [...new Set(runIds.filter((id) => UUID.test(id)).map((id) => id.toLowerCase()))];
  if (ids.length === 0) return new Map();
  const rows = await db
    .selectFrom('runs')
    .selectAll()
    .where('workspace_id', '=', ws)
    .where('id', 'in', ids)
    .execute();
  return new Map(rows.map((r) => [r.id, r]));
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

/**
 * The newest run of each job: one index probe per job (unique (job_id, number)), so it costs the
 * same with a million runs as with ten (DISTINCT ON over the jobs' runs read them all).
 */
export async function lastRunsOfJobs(db: Db, jobIds: readonly string[]): Promise<Map<string, RunRecord>> {
  if (jobIds.length === 0) return new Map();
  const ids = [...new Set(jobIds)];
  const rows = await db
    // `unnest(…) AS j`: a table j whose one column is named j too.
    .selectFrom(sql<{ j: string }>`unnest(${ids}::uuid[])`.as('j'))
    .innerJoinLateral(
      (eb) =>
        eb
          .selectFrom('runs')
          .selectAll()
          .whereRef('runs.job_id', '=', 'j.j')
          .orderBy('number', 'desc')
          .limit(1)
          .as('r'),
      (join) => join.onTrue(),
    )
    .selectAll('r')
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

/** Filters of the dashboard's runs page (all optional; lists mean "any of"). */
export interface RunPageFilter {
  jobId?: string;
  statuses?: readonly string[];
  triggers?: readonly string[];
  createdFrom?: Date;
  createdTo?: Date;
  startedFrom?: Date;
  startedTo?: Date;
}

/** The position of a row in newest-first order: created_at (exact, microseconds, UTC) then id. */
export interface RunPosition {
  createdAt: string;
  id: string;
}

/** Counting a page's matches stops here: past it the total is "at least". */
export const RUNS_COUNT_CAP = 10_000;

function filterRuns(db: Db, ws: string, f: RunPageFilter) {
  let q = db.selectFrom('runs').where('workspace_id', '=', ws);
  if (f.jobId) q = q.where('job_id', '=', f.jobId);
  if (f.statuses?.length) q = q.where('status', 'in', [...f.statuses]);
  if (f.triggers?.length) q = q.where('trigger', 'in', [...f.triggers]);
  if (f.createdFrom) q = q.where('created_at', '>=', f.createdFrom);
  if (f.createdTo) q = q.where('created_at', '<', f.createdTo);
  if (f.startedFrom) {
    // The other end: no run of the range was created before the earliest-created one of them
    // (an index-only scan of runs_ws_started over the range), so the scan stops there instead
    // of walking every older run to prove the last page is the last.
    const from = f.startedFrom;
    const to = f.startedTo;
    // The page itself walks the created_at index between those bounds: started_at compared as an
    // expression, so the planner does not fetch and sort every run of the range instead.
    q = q.where(sql<Date>`started_at + interval '0 seconds'`, '>=', from).where('created_at', '>=', (eb) => {
      let inRange = eb
        .selectFrom('runs as s')
        // min over an expression: PostgreSQL would otherwise answer min(created_at) by walking
        // the created_at index from the oldest run, filtering on started_at (seconds at 1M runs).
        .select(sql<Date>`min(s.created_at + interval '0 seconds')`.as('first'))
        .where('s.workspace_id', '=', ws)
        .where('s.started_at', '>=', from);
      if (to) inRange = inRange.where('s.started_at', '<', to);
      return inRange;
    });
  }
  if (f.startedTo)
    // A run is created before it starts: the same bound on created_at lets the newest-first scan
    // start at the range instead of walking every newer run.
    q = q
      .where(sql<Date>`started_at + interval '0 seconds'`, '<', f.startedTo)
      .where('created_at', '<', f.startedTo);
  return q;
}

/**
 * A keyset page of the workspace's runs, newest first (created_at desc, id desc), after `after`:
 * as fast deep in a million runs as at the top (indexes of migration 0005), and stable while runs
 * are added (they sort before the first page). `next` is the last row's position when there may
 * be more.
 */
export async function runsPage(
  db: Db,
  ws: string,
  f: RunPageFilter,
  after: RunPosition | undefined,
  limit: number,
): Promise<{ rows: RunRecord[]; next: RunPosition | undefined }> {
  let q = filterRuns(db, ws, f);
  if (after)
    q = q.where((eb) =>
      eb(
        eb.refTuple('created_at', 'id'),
        '<',
        eb.tuple(sql<Date>`${after.createdAt}::timestamptz`, after.id),
      ),
    );
  const rows = await q
    .selectAll()
    .select(
      sql<string>`to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`.as('position'),
    )
    .orderBy('created_at', 'desc')
    .orderBy('id', 'desc')
    .limit(limit + 1)
    .execute();
  const more = rows.length > limit;
  const page = more ? rows.slice(0, limit) : rows;
  const last = page.at(-1);
  return {
    rows: page.map(({ position: _position, ...r }) => r),
    next: more && last ? { createdAt: last.position, id: last.id } : undefined,
  };
}

/** How many runs match (exact up to RUNS_COUNT_CAP, then `atLeast`). */
export async function countRuns(
  db: Db,
  ws: string,
  f: RunPageFilter,
): Promise<{ count: number; atLeast: boolean }> {
  const capped = filterRuns(db, ws, f)
    .select(sql<number>`1`.as('one'))
    .limit(RUNS_COUNT_CAP + 1);
  const r = await db
    .selectFrom(capped.as('m'))
    .select((eb) => eb.fn.countAll<string>().as('n'))
    .executeTakeFirstOrThrow();
  const n = Number(r.n);
  return n > RUNS_COUNT_CAP ? { count: RUNS_COUNT_CAP, atLeast: true } : { count: n, atLeast: false };
}

/** Runs of the workspace created since `since`, by status. */
export async function runStatusCounts(db: Db, ws: string, since: Date): Promise<Map<string, number>> {
  const rows = await db
    .selectFrom('runs')
    .select(['status', (eb) => eb.fn.countAll<string>().as('n')])
    .where('workspace_id', '=', ws)
    .where('created_at', '>=', since)
    .groupBy('status')
    .execute();
  return new Map(rows.map((r) => [r.status, Number(r.n)]));
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
