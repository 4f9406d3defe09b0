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
