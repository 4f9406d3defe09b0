import { Inject, Injectable } from '@nestjs/common';
import type { ClientProxy } from '@nestjs/microservices';
import { randomUUID } from 'node:crypto';
import {
  cancelRunReply,
  JobRpc,
  requestRunReply,
  RunRpc,
  type CancelRunRequest,
  type RequestRun,
  type RunStatus,
  type RunTrigger,
  TERMINAL_RUN_STATUSES,
} from '#libs/contracts';
import { ApiError, notFound } from '#libs/http';
import { rpc, SERVICES_CLIENT } from '#libs/service-host';
import {
  jobOrDeletedByIdOrName,
  jobsById,
  type JobRow,
} from '../../../scheduling/src/job/read-models/jobs.queries.js';
import {
  listPipelines,
  pipelineByName,
  pipelineLoads,
  pipelineTables,
} from '../../../execution/src/run/read-models/pipelines.queries.js';
import {
  listRuns,
  runById,
  runsByIds,
  runPipelines,
  runTelemetry,
  runTimeline,
  type RunFilter,
  type RunRecord,
} from '../../../execution/src/run/read-models/runs.queries.js';
import type { Principal } from '../auth/authenticator.js';
import { GatewayDatabase } from '../gateway.database.js';
import { JobNotFound, JobsService } from '../job/jobs.service.js';

export type { RunRecord } from '../../../execution/src/run/read-models/runs.queries.js';

/** A run with the job it is a run of (a deleted job as its last version; undefined only if unknown). */
export interface RunOfJob {
  run: RunRecord;
  job: JobRow | undefined;
}

/** What a caller asks of a new run. */
export interface RequestRunInput {
  jobIdOrName: string;
  profile: string | null;
  trigger: RunTrigger;
}

/** Runs and the pipelines they produced: the one application service behind REST and gRPC. */
@Injectable()
export class RunsService {
  constructor(
    @Inject(GatewayDatabase) private readonly db: GatewayDatabase,
    @Inject(JobsService) private readonly jobs: JobsService,
    @Inject(SERVICES_CLIENT) private readonly client: ClientProxy,
  ) {}

  async list(ws: string, filter: RunFilter, limit: number, offset: number) {
    const { rows, total } = await listRuns(this.db.readModels.runs, ws, filter, limit, offset);
    return { rows: await this.withJobs(rows), total, limit, offset };
  }

  /**
   * The runs of a job named by id or name, a deleted job's included (its runs are kept; a name
   * used again means the live job). JobNotFound when no job, live or deleted, has that id or name.
   */
  async listOfJob(
    ws: string,
    jobIdOrName: string,
    filter: Omit<RunFilter, 'jobId'>,
    limit: number,
    offset: number,
  ) {
    const job = await jobOrDeletedByIdOrName(this.db.readModels.jobs, ws, jobIdOrName);
    if (!job) throw new JobNotFound(jobIdOrName);
    return this.list(ws, { ...filter, jobId: job.id }, limit, offset);
  }

  /** A run by id; 404 when the workspace has no such run. */
  async require(ws: string, runId: string): Promise<RunRecord> {
    const run = await runById(this.db.readModels.runs, ws, runId);
    if (!run) throw notFound(`run ${runId} not found`);
    return run;
  }

  /** Runs of the workspace by id, one query (unknown ids are left out). */
  byIds(ws: string, runIds: readonly string[]): Promise<Map<string, RunRecord>> {
    return runsByIds(this.db.readModels.runs, ws, runIds);
  }

  async get(ws: string, runId: string): Promise<RunOfJob> {
    return (await this.withJobs([await this.require(ws, runId)]))[0]!;
  }

  /** A run with its status timeline, what its pipelines did and what they reported to its beacon. */
  async details(ws: string, runId: string) {
    const of = await this.get(ws, runId);
    const [timeline, pipelines, telemetry] = await Promise.all([
      runTimeline(this.db.readModels.runs, of.run.id),
      runPipelines(this.db.readModels.runs, of.run.id),
      runTelemetry(this.db.readModels.runs, ws, of.run.id),
    ]);
    return { ...of, timeline, pipelines, telemetry };
  }

  /** The RequestRun command: a run of a job (by id or name), readable once it returns. */
  async requestRun(
    p: Principal,
    ws: string,
    req: RequestRunInput,
    idempotencyKey?: string,
  ): Promise<RunOfJob> {
    const job = await this.jobs.require(ws, req.jobIdOrName);
    const reply = await rpc(
      this.client,
      JobRpc.requestRun,
      {
        workspaceId: ws,
        actor: p.userId,
        commandId: idempotencyKey ? `run:${idempotencyKey}` : randomUUID(),
        jobId: job.id,
        trigger: req.trigger,
        profile: req.profile,
        entryPoint: job.entry_point,
      } satisfies RequestRun,
      requestRunReply,
    );
    await this.db.waitForProjection('runs', reply.seq);
    const run = await runById(this.db.readModels.runs, ws, reply.runId);
    if (!run) throw new ApiError(503, `run ${reply.runId} was requested but is not readable yet, retry`);
    return (await this.withJobs([run]))[0]!;
  }

  /** Cancel: pending → cancelled, active → cancelling → cancelled once its processes are gone. */
  async cancel(p: Principal, ws: string, runId: string): Promise<RunOfJob> {
    const run = await this.require(ws, runId);
    const reply = await rpc(
      this.client,
      RunRpc.cancel,
      { workspaceId: ws, actor: p.userId, runId: run.id } satisfies CancelRunRequest,
      cancelRunReply,
    );
    await this.db.waitForProjection('runs', reply.seq);
    const now = (await runById(this.db.readModels.runs, ws, run.id)) ?? run;
    return (await this.withJobs([now]))[0]!;
  }

  /**
   * Bulk cancel: every active (non-terminal) run of each named job is cancelled (a dry run only
   * reports them). Jobs without an active run are listed as not running; an unknown job is a 404
   * before anything is cancelled.
   */
  async cancelActiveRuns(p: Principal, ws: string, jobRefs: readonly string[], dryRun: boolean) {
    const jobs = await Promise.all(jobRefs.map((ref) => this.jobs.require(ws, ref)));
    const cancelled: {
      jobRef: string;
      previousStatus: RunRecord['status'];
      runId: string;
      runNumber: number;
    }[] = [];
    const notRunning: string[] = [];
    for (const job of jobs) {
      const active: RunRecord[] = [];
      for (let offset = 0; ; offset += 1000) {
        const { rows } = await listRuns(this.db.readModels.runs, ws, { jobId: job.id }, 1000, offset);
        active.push(...rows.filter((r) => !TERMINAL_RUN_STATUSES.includes(r.status as RunStatus)));
        if (rows.length < 1000) break;
      }
      if (active.length === 0) notRunning.push(job.name);
      for (const run of active) {
        if (!dryRun) await this.cancel(p, ws, run.id);
        cancelled.push({
          jobRef: job.name,
          previousStatus: run.status,
          runId: run.id,
          runNumber: run.number,
        });
      }
    }
    return { cancelled, notRunning };
  }

  /** Runs with their jobs. */
  async withJobs(rows: readonly RunRecord[]): Promise<RunOfJob[]> {
    const jobs = new Map(
      (
        await jobsById(
          this.db.readModels.jobs,
          rows.map((r) => r.job_id),
        )
      ).map((j) => [j.id, j]),
    );
    return rows.map((run) => ({ run, job: jobs.get(run.job_id) }));
  }

  pipelines(ws: string) {
    return listPipelines(this.db.readModels.pipelines, ws);
  }

  /** A pipeline with its tables and newest loads; 404 when unknown. */
  async pipeline(ws: string, name: string, loads = 100) {
    const p = await pipelineByName(this.db.readModels.pipelines, ws, name);
    if (!p) throw notFound(`pipeline ${name} not found`);
    const [tables, recent] = await Promise.all([
      pipelineTables(this.db.readModels.pipelines, ws, name),
      pipelineLoads(this.db.readModels.pipelines, ws, name, loads),
    ]);
    return { pipeline: p, tables, loads: recent };
  }
}
