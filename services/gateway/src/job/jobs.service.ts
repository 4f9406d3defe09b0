import { Inject, Injectable } from '@nestjs/common';
import type { ClientProxy } from '@nestjs/microservices';
import { randomUUID } from 'node:crypto';
import {
  deleteJobReply,
  JobRpc,
  upsertJobReply,
  type DeleteJobRequest,
  type UpsertJobRequest,
} from '#libs/contracts';
import { ApiError } from '#libs/http';
import { rpc, SERVICES_CLIENT } from '#libs/service-host';
import {
  jobByIdOrName,
  jobVersion,
  listJobs,
  listJobVersions,
  type JobRow,
  type JobVersionRow,
} from '../../../scheduling/src/job/read-models/jobs.queries.js';
import { lastRunsOfJobs, type RunRecord } from '../../../execution/src/run/read-models/runs.queries.js';
import type { Principal } from '../auth/authenticator.js';
import { GatewayDatabase } from '../gateway.database.js';

export type { JobRow, JobVersionRow } from '../../../scheduling/src/job/read-models/jobs.queries.js';

/** A job the caller named does not exist (the compatible REST mapper calls it a script). */
export class JobNotFound extends ApiError {
  constructor(readonly ref: string) {
    super(404, `job ${ref} not found`);
  }
}

/** A job and its newest run. */
export interface JobWithLastRun {
  job: JobRow;
  lastRun: RunRecord | undefined;
}

/** What a caller sets on a job (unset optional fields keep their value). */
export type JobInput = Omit<UpsertJobRequest, 'workspaceId' | 'actor' | 'commandId'>;

const page = <T>(rows: T[], total: number, limit: number, offset: number) => ({ rows, total, limit, offset });

/** Jobs: the one application service behind the REST routes and the gRPC methods. */
@Injectable()
export class JobsService {
  constructor(
    @Inject(GatewayDatabase) private readonly db: GatewayDatabase,
    @Inject(SERVICES_CLIENT) private readonly client: ClientProxy,
  ) {}

  async list(ws: string, limit: number, offset: number) {
    const { rows, total } = await listJobs(this.db.readModels.jobs, ws, limit, offset);
    const last = await lastRunsOfJobs(
      this.db.readModels.runs,
      rows.map((r) => r.id),
    );
    return page(
      rows.map((job) => ({ job, lastRun: last.get(job.id) })),
      total,
      limit,
      offset,
    );
  }

  /** A job by id or name, or undefined. */
  find(ws: string, idOrName: string): Promise<JobRow | undefined> {
    return jobByIdOrName(this.db.readModels.jobs, ws, idOrName);
  }

  async require(ws: string, idOrName: string): Promise<JobRow> {
    const job = await this.find(ws, idOrName);
    if (!job) throw new JobNotFound(idOrName);
    return job;
  }

  async get(ws: string, idOrName: string): Promise<JobWithLastRun> {
    const job = await this.require(ws, idOrName);
    return { job, lastRun: await this.lastRun(job.id) };
  }

  async lastRun(jobId: string): Promise<RunRecord | undefined> {
    return (await lastRunsOfJobs(this.db.readModels.runs, [jobId])).get(jobId);
  }

  async versions(jobId: string, limit: number, offset: number) {
    const { rows, total } = await listJobVersions(this.db.readModels.jobs, jobId, limit, offset);
    return page(rows, total, limit, offset);
  }

  version(jobId: string, idOrNumber: string): Promise<JobVersionRow | undefined> {
    return jobVersion(this.db.readModels.jobs, jobId, idOrNumber);
  }

  /** Creates or updates a job by name; every change makes a new version. */
  async upsert(p: Principal, ws: string, input: JobInput, idempotencyKey?: string): Promise<JobRow> {
    return (await this.upsertDetailed(p, ws, input, idempotencyKey)).job;
  }

  /**
   * Applies a set of job definitions (a deployment manifest of dlt-runtime 0.26.1, each job named
   * by its job_ref): each is created, updated (a new version) or left unchanged; with
   * `archiveOthers`, the workspace's other manifest jobs (names starting with `jobs.`) are archived
   * (deleted: they stop firing, their versions and runs stay). A dry run writes nothing and reports
   * what would happen.
   */
  async applyDefinitions(
    p: Principal,
    ws: string,
    inputs: readonly JobInput[],
    opts: { archiveOthers: boolean; dryRun: boolean },
  ) {
    const existing = new Map(
      (await listJobs(this.db.readModels.jobs, ws, 1000, 0)).rows.map((j) => [j.name, j]),
    );
    const added: JobRow[] = [];
    const updated: { job: JobRow; previous: JobVersionRow | undefined }[] = [];
    const unchanged: JobRow[] = [];
    for (const input of inputs) {
      const before = existing.get(input.name);
      if (opts.dryRun) {
        if (!before) added.push(previewJob(ws, p.userId, input));
        else if (differs(before, input)) updated.push({ job: before, previous: undefined });
        else unchanged.push(before);
        continue;
      }
      const r = await this.upsertDetailed(p, ws, input);
      if (r.created) added.push(r.job);
      else if (r.changed.length > 0)
        updated.push({
          job: r.job,
          previous: before ? await this.version(before.id, String(before.version)) : undefined,
        });
      else unchanged.push(r.job);
    }
    const wanted = new Set(inputs.map((i) => i.name));
    const archived: JobRow[] = [];
    if (opts.archiveOthers)
      for (const job of existing.values())
        if (job.name.startsWith('jobs.') && !wanted.has(job.name)) {
          if (!opts.dryRun) await this.delete(p, ws, job.id);
          archived.push(job);
        }
    return { added, updated, unchanged, archived };
  }

  /**
   * The jobs a trigger request names: every job ref (404 if one is unknown), then every job one of
   * the selectors matches. A selector is a glob (`*`, `?`) on the job ref or on one of the job's
   * triggers (`manual:<job_ref>`, `schedule:<cron>`); `manual:` and `schedule:` alone mean any;
   * `batch`, `interactive` and `job` select by kind. (Tags and pipeline names are manifest metadata
   * Runway jobs do not keep yet: `tag:` and `pipeline_name:` selectors match nothing.)
   */
  async match(ws: string, jobRefs: readonly string[], selectors: readonly string[]) {
    const out = new Map<string, { job: JobRow; matched: string[] }>();
    for (const ref of jobRefs) {
      const job = await this.require(ws, ref);
      out.set(job.id, { job, matched: [`manual:${job.name}`] });
    }
    if (selectors.length === 0) return [...out.values()];
    const all = (await listJobs(this.db.readModels.jobs, ws, 1000, 0)).rows;
    for (const raw of selectors) {
      const selector = raw === 'manual:' || raw === 'schedule:' || raw === 'tag:' ? `${raw}*` : raw;
      for (const job of all) {
        const triggers = [`manual:${job.name}`, ...(job.schedule ? [`schedule:${job.schedule}`] : [])];
        const hit =
          selector === 'job' || selector === job.kind
            ? [`manual:${job.name}`]
            : triggers.filter((t) => glob(selector).test(t));
        if (hit.length === 0 && glob(selector).test(job.name)) hit.push(`manual:${job.name}`);
        if (hit.length === 0) continue;
        const seen = out.get(job.id);
        if (seen) seen.matched.push(...hit.filter((h) => !seen.matched.includes(h)));
        else out.set(job.id, { job, matched: hit });
      }
    }
    return [...out.values()];
  }

  private async upsertDetailed(p: Principal, ws: string, input: JobInput, idempotencyKey?: string) {
    const reply = await rpc(
      this.client,
      JobRpc.upsert,
      {
        ...input,
        workspaceId: ws,
        actor: p.userId,
        commandId: idempotencyKey ? `job:${idempotencyKey}` : randomUUID(),
      } satisfies UpsertJobRequest,
      upsertJobReply,
    );
    await this.db.waitForProjection('jobs', reply.seq);
    const job = await this.find(ws, reply.jobId);
    if (!job) throw new ApiError(503, `job ${reply.jobId} was stored but is not readable yet, retry`);
    return { job, created: reply.created, changed: reply.changed };
  }

  /** Deletes a job: it stops firing and cannot be run; its versions and runs stay. */
  async delete(p: Principal, ws: string, idOrName: string, idempotencyKey?: string): Promise<JobRow> {
    const job = await this.require(ws, idOrName);
    const reply = await rpc(
      this.client,
      JobRpc.delete,
      {
        workspaceId: ws,
        actor: p.userId,
        commandId: idempotencyKey ? `job-delete:${idempotencyKey}` : randomUUID(),
        jobId: job.id,
      } satisfies DeleteJobRequest,
      deleteJobReply,
    );
    await this.db.waitForProjection('jobs', reply.seq);
    return job;
  }
}

/** Whether applying `input` to `job` would make a new version (the fields a definition sets). */
function differs(job: JobRow, input: JobInput): boolean {
  return (
    job.description !== input.description ||
    job.entry_point !== input.entryPoint ||
    job.kind !== input.kind ||
    (input.schedule !== undefined && job.schedule !== input.schedule) ||
    (input.timeoutSeconds !== undefined && job.timeout_seconds !== input.timeoutSeconds)
  );
}

/** What a dry run shows for a job it would create. */
function previewJob(ws: string, actor: string, input: JobInput): JobRow {
  const now = new Date();
  return {
    id: '00000000-0000-0000-0000-000000000000',
    workspace_id: ws,
    name: input.name,
    description: input.description,
    entry_point: input.entryPoint,
    kind: input.kind,
    version: 0,
    active: input.active ?? true,
    profile: input.profile ?? null,
    schedule: input.schedule ?? null,
    timezone: input.timezone ?? 'UTC',
    missed_policy: input.missedPolicy ?? 'run_once',
    overlap_policy: input.overlapPolicy ?? 'skip',
    timeout_seconds: input.timeoutSeconds ?? null,
    next_scheduled_run: null,
    queued_fire_at: null,
    last_fire_at: null,
    version_id: '00000000-0000-0000-0000-000000000000',
    created_by: actor,
    created_at: now,
    updated_at: now,
  };
}

/** fnmatch-style glob (`*`, `?`) as a whole-string regular expression. */
function glob(pattern: string): RegExp {
  const body = pattern
    .split('')
    .map((c) => (c === '*' ? '.*' : c === '?' ? '.' : c.replace(/[.+^${}()|[\]\\]/g, '\\$&')))
    .join('');
  return new RegExp(`^${body}$`);
}
