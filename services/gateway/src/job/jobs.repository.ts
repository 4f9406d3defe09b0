import { Inject, Injectable } from '@nestjs/common';
import { sql, type Kysely, type Selectable } from 'kysely';
import { SERVICE_CONTEXT, type ServiceContext } from '#libs/service-host';
import type { CheckpointTable } from '#libs/projections';
import type { SchedulingTables, JobRow, JobVersionRow } from '../../../scheduling/src/migrations/index.js';
import type { ExecutionTables, RunRow } from '../../../execution/src/migrations/index.js';

export type RunRecord = Selectable<RunRow>;
type Tables = SchedulingTables & ExecutionTables & CheckpointTable;
const uuid = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
export const isUuid = (s: string) => uuid.test(s);

export interface RunFilter {
  jobId?: string;
  status?: string;
}

/** The only SQL over the jobs, job_versions, runs, run_status_timeline and pipeline read models. */
@Injectable()
export class JobsRepository {
  private readonly db: Kysely<Tables>;
  constructor(@Inject(SERVICE_CONTEXT) private readonly ctx: ServiceContext) {
    this.db = ctx.db as Kysely<Tables>;
  }

  /** A job by id (a UUID) or else by name; names may hold '/' and '.'. */
  async job(ws: string, idOrName: string): Promise<JobRow | undefined> {
    if (isUuid(idOrName)) {
      const byId = await this.db
        .selectFrom('jobs')
        .selectAll()
        .where('workspace_id', '=', ws)
        .where('id', '=', idOrName.toLowerCase())
        .executeTakeFirst();
      if (byId) return byId;
    }
    return this.db
      .selectFrom('jobs')
      .selectAll()
      .where('workspace_id', '=', ws)
      .where('name', '=', idOrName)
      .executeTakeFirst();
  }

  /**
   * Jobs by id; a deleted job (its runs stay) as its last version: inactive, unscheduled, so a run
   * of it still has its nested script.
   */
  async jobsById(ids: readonly string[]): Promise<JobRow[]> {
    if (ids.length === 0) return [];
    const wanted = [...new Set(ids)];
    const live = await this.db.selectFrom('jobs').selectAll().where('id', 'in', wanted).execute();
    const missing = wanted.filter((id) => !live.some((j) => j.id === id));
    if (missing.length === 0) return live;
    const last = await this.db
      .selectFrom('job_versions')
      .selectAll()
      .distinctOn('job_id')
      .where('job_id', 'in', missing)
      .orderBy('job_id')
      .orderBy('version', 'desc')
      .execute();
    return [
      ...live,
      ...last.map((v): JobRow => ({
        id: v.job_id,
        workspace_id: v.workspace_id,
        name: v.name,
        description: v.description,
        entry_point: v.entry_point,
        kind: v.kind,
        profile: v.profile,
        schedule: null,
        active: false,
        timeout_seconds: v.timeout_seconds,
        timezone: v.timezone,
        missed_policy: v.missed_policy,
        overlap_policy: v.overlap_policy,
        queued_fire_at: null,
        last_fire_at: null,
        next_scheduled_run: null,
        version: v.version,
        version_id: v.id,
        created_by: v.created_by,
        created_at: v.created_at,
        updated_at: v.created_at,
      })),
    ];
  }

  async jobs(ws: string, limit: number, offset: number): Promise<{ rows: JobRow[]; total: number }> {
    const [rows, count] = await Promise.all([
      this.db
        .selectFrom('jobs')
        .selectAll()
        .where('workspace_id', '=', ws)
        .orderBy('name', 'asc')
        .limit(limit)
        .offset(offset)
        .execute(),
      this.db
        .selectFrom('jobs')
        .select((eb) => eb.fn.countAll<string>().as('n'))
        .where('workspace_id', '=', ws)
        .executeTakeFirstOrThrow(),
    ]);
    return { rows, total: Number(count.n) };
  }

  /** The newest run of each job. */
  async lastRuns(jobIds: readonly string[]): Promise<Map<string, RunRecord>> {
    if (jobIds.length === 0) return new Map();
    const rows = await sql<RunRecord>`
      SELECT DISTINCT ON (job_id) * FROM runs WHERE job_id IN (${sql.join([...new Set(jobIds)])})
      ORDER BY job_id, number DESC`.execute(this.db);
    return new Map(rows.rows.map((r) => [r.job_id, r]));
  }

  async versions(
    jobId: string,
    limit: number,
    offset: number,
  ): Promise<{ rows: JobVersionRow[]; total: number }> {
    const [rows, count] = await Promise.all([
      this.db
        .selectFrom('job_versions')
        .selectAll()
        .where('job_id', '=', jobId)
        .orderBy('version', 'desc')
        .limit(limit)
        .offset(offset)
        .execute(),
      this.db
        .selectFrom('job_versions')
        .select((eb) => eb.fn.countAll<string>().as('n'))
        .where('job_id', '=', jobId)
        .executeTakeFirstOrThrow(),
    ]);
    return { rows, total: Number(count.n) };
  }

  version(jobId: string, idOrNumber: string): Promise<JobVersionRow | undefined> {
    const q = this.db.selectFrom('job_versions').selectAll().where('job_id', '=', jobId);
    if (idOrNumber === 'latest') return q.orderBy('version', 'desc').limit(1).executeTakeFirst();
    if (isUuid(idOrNumber)) return q.where('id', '=', idOrNumber.toLowerCase()).executeTakeFirst();
    if (/^\d{1,9}$/.test(idOrNumber)) return q.where('version', '=', Number(idOrNumber)).executeTakeFirst();
    return Promise.resolve(undefined);
  }

  run(ws: string, runId: string): Promise<RunRecord | undefined> {
    if (!isUuid(runId)) return Promise.resolve(undefined);
    return this.db
      .selectFrom('runs')
      .selectAll()
      .where('workspace_id', '=', ws)
      .where('id', '=', runId.toLowerCase())
      .executeTakeFirst();
  }

  async runs(
    ws: string,
    filter: RunFilter,
    limit: number,
    offset: number,
  ): Promise<{ rows: RunRecord[]; total: number }> {
    let q = this.db.selectFrom('runs').where('workspace_id', '=', ws);
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

  timeline(runId: string) {
    return this.db
      .selectFrom('run_status_timeline')
      .select(['status', 'at', 'reason'])
      .where('run_id', '=', runId)
      .orderBy('seq')
      .orderBy('idx')
      .execute();
  }

  /** What a run's pipelines did (PipelineReported). */
  runPipelines(runId: string) {
    return this.db
      .selectFrom('run_pipelines')
      .selectAll()
      .where('run_id', '=', runId)
      .orderBy('pipeline_name')
      .execute();
  }

  pipelines(ws: string) {
    return this.db
      .selectFrom('pipelines')
      .selectAll()
      .where('workspace_id', '=', ws)
      .orderBy('name')
      .execute();
  }

  pipeline(ws: string, name: string) {
    return this.db
      .selectFrom('pipelines')
      .selectAll()
      .where('workspace_id', '=', ws)
      .where('name', '=', name)
      .executeTakeFirst();
  }

  pipelineTables(ws: string, name: string) {
    return this.db
      .selectFrom('pipeline_tables')
      .selectAll()
      .where('workspace_id', '=', ws)
      .where('pipeline_name', '=', name)
      .orderBy('schema_name')
      .orderBy('table_name')
      .execute();
  }

  pipelineLoads(ws: string, name: string, limit: number) {
    return this.db
      .selectFrom('pipeline_loads')
      .selectAll()
      .where('workspace_id', '=', ws)
      .where('pipeline_name', '=', name)
      .orderBy('at', 'desc')
      .orderBy('load_id', 'desc')
      .limit(limit)
      .execute();
  }

  /** Read-your-writes across services: waits until a projection's checkpoint reached `seq`. */
  waitForProjection(name: string, seq: number, timeoutMs = 10_000): Promise<void> {
    return this.ctx.waitForProjection(name, seq, timeoutMs);
  }
}
