import { Inject, Injectable } from '@nestjs/common';
import { badRequest, notFound } from '#libs/http';
import { SERVICE_CONTEXT, type ServiceContext } from '#libs/service-host';
import {
  runStatuses,
  type JobSummary,
  type Overview,
  type PipelineInsights,
  type RunSummary,
  type RunsPage,
  type SchedulePreview,
  type StatusCounts,
} from '../../../../libs/client/src/dashboard.js';
import { listJobs, type JobRow } from '../../../scheduling/src/job/read-models/jobs.queries.js';
import {
  nextFire,
  shortestInterval,
  validateCron,
  validateTimezone,
} from '../../../scheduling/src/scheduler/cron.js';
import {
  pipelineByName,
  pipelineLoads,
  pipelineRuns,
  pipelineTables,
} from '../../../execution/src/run/read-models/pipelines.queries.js';
import {
  countRuns,
  lastRunsOfJobs,
  runsPage,
  runStatusCounts,
  type RunPageFilter,
  type RunPosition,
  type RunRecord,
} from '../../../execution/src/run/read-models/runs.queries.js';
import { GatewayDatabase } from '../gateway.database.js';
import { RunsService } from '../run/runs.service.js';

const iso = (d: Date | null | undefined): string | null => (d ? d.toISOString() : null);

/** The cursor of the runs page: the last row's position, opaque to clients (base64url JSON). */
export function encodeCursor(p: RunPosition): string {
  return Buffer.from(JSON.stringify([p.createdAt, p.id]), 'utf8').toString('base64url');
}

const POSITION_AT = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$/;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export function decodeCursor(cursor: string): RunPosition {
  const wrong = () => badRequest('query.cursor: not a cursor of this API (use next_cursor as given)');
  let v: unknown;
  try {
    v = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
  } catch {
    throw wrong();
  }
  if (!Array.isArray(v) || v.length !== 2) throw wrong();
  const [at, id]: unknown[] = v;
  if (typeof at !== 'string' || typeof id !== 'string' || !POSITION_AT.test(at) || !UUID.test(id))
    throw wrong();
  return { createdAt: at, id };
}

export function toRunSummary(run: RunRecord, job: JobRow | undefined): RunSummary {
  return {
    id: run.id,
    number: run.number,
    job_id: run.job_id,
    job_name: job?.name ?? null,
    status: runStatuses.find((s) => s === run.status) ?? 'pending',
    trigger: run.trigger === 'schedule' ? 'schedule' : run.trigger === 'api' ? 'api' : 'manual',
    profile: run.profile,
    created_at: run.created_at.toISOString(),
    started_at: iso(run.started_at),
    ended_at: iso(run.ended_at),
    duration_ms: run.duration_ms,
    failure_reason: run.failure_reason,
    deployment_version: run.deployment_version,
  };
}

export function toJobSummary(job: JobRow, lastRun: RunRecord | undefined): JobSummary {
  return {
    id: job.id,
    name: job.name,
    kind: job.kind === 'interactive' ? 'interactive' : 'batch',
    entry_point: job.entry_point,
    description: job.description,
    schedule: job.schedule,
    timezone: job.timezone,
    active: job.active,
    timeout_seconds: job.timeout_seconds,
    next_fire_at: iso(job.next_scheduled_run),
    version: job.version,
    updated_at: job.updated_at.toISOString(),
    last_run: lastRun ? toRunSummary(lastRun, job) : null,
  };
}

/** Wall-clock time and UTC offset of an instant in a zone (`2026-12-07 09:00:00`, `+01:00`). */
function inZone(at: Date, tz: string): { local: string; utc_offset: string } {
  const parts = new Intl.DateTimeFormat('en-CA', {
    timeZone: tz,
    year: 'numeric',
    month: '2-digit',
    day: '2-digit',
    hour: '2-digit',
    minute: '2-digit',
    second: '2-digit',
    hourCycle: 'h23',
    timeZoneName: 'longOffset',
  }).formatToParts(at);
  const part = (t: Intl.DateTimeFormatPartTypes) => parts.find((p) => p.type === t)?.value ?? '';
  const offset = part('timeZoneName').replace(/^GMT/, '') || '+00:00';
  return {
    local: `${part('year')}-${part('month')}-${part('day')} ${part('hour')}:${part('minute')}:${part('second')}`,
    utc_offset: offset,
  };
}

/** Most live jobs the overview lists (a workspace with more pages through the jobs list). */
const OVERVIEW_MAX_JOBS = 500;

/**
 * The dashboard's reads, one application service: the runs page (keyset), the overview, the
 * schedule preview (the scheduler's own fire-time code) and the pipeline insights.
 */
@Injectable()
export class DashboardService {
  constructor(
    @Inject(GatewayDatabase) private readonly db: GatewayDatabase,
    @Inject(RunsService) private readonly runs: RunsService,
    @Inject(SERVICE_CONTEXT) private readonly ctx: ServiceContext,
  ) {}

  async runsPage(
    ws: string,
    filter: RunPageFilter,
    cursor: string | undefined,
    limit: number,
    withTotal: boolean,
  ): Promise<RunsPage> {
    const after = cursor === undefined ? undefined : decodeCursor(cursor);
    const [page, total] = await Promise.all([
      runsPage(this.db.readModels.runs, ws, filter, after, limit),
      withTotal ? countRuns(this.db.readModels.runs, ws, filter) : undefined,
    ]);
    const withJobs = await this.runs.withJobs(page.rows);
    return {
      items: withJobs.map(({ run, job }) => toRunSummary(run, job)),
      next_cursor: page.next ? encodeCursor(page.next) : null,
      limit,
      total: total ? { count: total.count, at_least: total.atLeast } : null,
    };
  }

  async overview(ws: string, recent: number, now = new Date()): Promise<Overview> {
    const [jobs, recentRuns, counts] = await Promise.all([
      listJobs(this.db.readModels.jobs, ws, OVERVIEW_MAX_JOBS, 0),
      runsPage(this.db.readModels.runs, ws, {}, undefined, recent),
      runStatusCounts(this.db.readModels.runs, ws, new Date(now.getTime() - 86_400_000)),
    ]);
    const [last, recentWithJobs] = await Promise.all([
      lastRunsOfJobs(
        this.db.readModels.runs,
        jobs.rows.map((j) => j.id),
      ),
      this.runs.withJobs(recentRuns.rows),
    ]);
    const counts24h: StatusCounts = {
      pending: 0,
      starting: 0,
      running: 0,
      finalizing: 0,
      cancelling: 0,
      completed: 0,
      failed: 0,
      cancelled: 0,
      skipped: 0,
      total: 0,
    };
    for (const s of runStatuses) counts24h[s] = counts.get(s) ?? 0;
    counts24h.total = [...counts.values()].reduce((a, b) => a + b, 0);
    return {
      workspace_id: ws,
      generated_at: now.toISOString(),
      jobs: jobs.rows.map((j) => toJobSummary(j, last.get(j.id))),
      recent_runs: recentWithJobs.map(({ run, job }) => toRunSummary(run, job)),
      counts_24h: counts24h,
    };
  }

  /** The next `count` fire times of a schedule, computed as the scheduler computes them. */
  schedulePreview(cron: string, tz: string, count: number, after: Date): SchedulePreview {
    let expr: string;
    try {
      expr = validateCron(cron);
    } catch (err) {
      throw badRequest(err instanceof Error ? err.message : String(err), { field: 'cron' });
    }
    try {
      validateTimezone(tz);
    } catch (err) {
      throw badRequest(err instanceof Error ? err.message : String(err), { field: 'tz' });
    }
    const fires: SchedulePreview['fires'] = [];
    let t = after;
    for (let i = 0; i < count; i++) {
      const next = nextFire(expr, tz, t);
      if (!next) break;
      fires.push({ at: next.toISOString(), ...inZone(next, tz) });
      t = next;
    }
    const shortest = shortestInterval(expr);
    const min = this.ctx.config.scheduler.minIntervalSeconds;
    return {
      cron: expr,
      timezone: tz,
      fires,
      shortest_interval_seconds: Number.isFinite(shortest) ? shortest : null,
      min_interval_seconds: min,
      too_frequent: min > 0 && shortest < min,
    };
  }

  /** A pipeline's schemas, loads, lineage and trend over the last `runs` runs that reported it. */
  async pipelineInsights(ws: string, name: string, runs: number): Promise<PipelineInsights> {
    const db = this.db.readModels.pipelines;
    const p = await pipelineByName(db, ws, name);
    if (!p) throw notFound(`pipeline ${name} not found (no run reported it)`);
    const [tables, loads, reported] = await Promise.all([
      pipelineTables(db, ws, name),
      pipelineLoads(db, ws, name, 100),
      pipelineRuns(db, ws, name, runs),
    ]);
    const schemas = [...new Set(tables.map((t) => t.schema_name))].map((schema) => {
      const of = tables.filter((t) => t.schema_name === schema);
      return {
        name: schema,
        tables: of.map((t) => ({
          name: t.table_name,
          parent: t.parent,
          resource: t.resource,
          write_disposition: t.write_disposition,
          children: of.filter((c) => c.parent === t.table_name).map((c) => c.table_name),
          columns: t.columns.map((c) => ({ name: c.name, data_type: c.dataType, nullable: c.nullable })),
        })),
      };
    });
    // Lineage: resource → top-level table → child table (nested records), per schema.
    const nodes: PipelineInsights['lineage']['nodes'] = [];
    const edges: PipelineInsights['lineage']['edges'] = [];
    const seen = new Set<string>();
    const node = (id: string, kind: 'resource' | 'table' | 'child_table', label: string) => {
      if (seen.has(id)) return;
      seen.add(id);
      nodes.push({ id, kind, label });
    };
    for (const t of tables) {
      const id = `table:${t.schema_name}.${t.table_name}`;
      node(id, t.parent ? 'child_table' : 'table', t.table_name);
      if (t.parent) edges.push({ from: `table:${t.schema_name}.${t.parent}`, to: id });
      else {
        const resource = t.resource ?? t.table_name;
        node(`resource:${resource}`, 'resource', resource);
        edges.push({ from: `resource:${resource}`, to: id });
      }
    }
    const ended = reported.filter((r) => ['completed', 'failed', 'cancelled'].includes(r.status));
    return {
      name: p.name,
      destination: p.destination,
      dataset_name: p.dataset_name,
      last_run_id: p.last_run_id,
      schemas,
      loads: loads.map((l) => {
        const counts = l.row_counts ?? {};
        return {
          load_id: l.load_id,
          run_id: l.run_id,
          completed: l.completed,
          status: l.completed ? 'completed' : 'failed',
          row_counts: counts,
          rows_total: Object.values(counts).reduce((a, b) => a + b, 0),
          duration_ms: l.duration_ms,
          at: l.at.toISOString(),
        };
      }),
      lineage: { nodes, edges },
      trend: {
        runs: reported
          .map((r) => ({
            run_id: r.run_id,
            number: r.number,
            status: runStatuses.find((s) => s === r.status) ?? 'pending',
            started_at: iso(r.started_at),
            duration_ms: r.pipeline_duration_ms ?? r.duration_ms,
          }))
          .reverse(),
        success_rate:
          ended.length === 0 ? null : ended.filter((r) => r.status === 'completed').length / ended.length,
      },
    };
  }
}
