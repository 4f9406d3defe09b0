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
import { ApiError, badRequest } from '#libs/http';
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
import {
  deploymentFiles,
  latestDeployment,
} from '../../../deployments/src/deployment/read-models/deployments.queries.js';
import type { Principal } from '../auth/authenticator.js';
import { GatewayDatabase } from '../gateway.database.js';
import { compatJobRef } from './job-ref.js';

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

  /** A job by id or name (or the `jobs.…` ref dlt-runtime 0.26.1 knows a plain job by), or undefined. */
  async find(ws: string, idOrName: string): Promise<JobRow | undefined> {
    const job = await jobByIdOrName(this.db.readModels.jobs, ws, idOrName);
    if (job || !idOrName.startsWith('jobs.')) return job;
    const { rows } = await listJobs(this.db.readModels.jobs, ws, 1000, 0);
    return rows.find((j) => compatJobRef(j.name) === idOrName);
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

  /**
   * Creates a new job (the dashboard's form): 409 when a live job has the name, 400 unless the
   * entry point is a file of the workspace's latest deployment. (Two creates racing for one name:
   * the second updates the job the first made.)
   */
  async create(p: Principal, ws: string, input: JobInput, idempotencyKey?: string): Promise<JobRow> {
    if (await this.find(ws, input.name))
      throw new ApiError(409, `a job named ${input.name} already exists`, { code: 'job_exists' });
    const latest = await latestDeployment(this.db.readModels.deployments, ws);
    if (!latest)
      throw badRequest(
        'nothing is deployed in this workspace yet: deploy the workspace before creating a job',
        {
          field: 'entry_point',
        },
      );
    const path = input.entryPoint.replace(/^(\.\/)+/, '');
    const files = await deploymentFiles(this.db.readModels.deployments, latest.id);
    if (!files.some((f) => f.path === path && f.type === 'file'))
      throw badRequest(`the entry point ${path} is not a file of deployment ${latest.version}`, {
        field: 'entry_point',
      });
    return this.upsert(p, ws, { ...input, entryPoint: path }, idempotencyKey);
  }

  /** Changes, clears (schedule null) or pauses/resumes (active) a job's schedule; the rest stays. */
  async setSchedule(
    p: Principal,
    ws: string,
    jobId: string,
    change: { schedule?: string | null; timezone?: string; active?: boolean },
    idempotencyKey?: string,
  ): Promise<JobRow> {
    const job = await this.require(ws, jobId);
    return this.upsert(
      p,
      ws,
      {
        name: job.name,
        description: job.description,
        entryPoint: job.entry_point,
        kind: job.kind === 'interactive' ? 'interactive' : 'batch',
        schedule: change.schedule,
        timezone: change.timezone,
        active: change.active,
      },
      idempotencyKey,
    );
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
