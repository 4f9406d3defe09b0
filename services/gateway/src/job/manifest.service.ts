import { Inject, Injectable } from '@nestjs/common';
import type { ClientProxy } from '@nestjs/microservices';
import { randomUUID } from 'node:crypto';
import {
  backfillReply,
  deployManifestReply,
  JobRpc,
  triggerJobsReply,
  type BackfillReply,
  type BackfillRequest,
  type DeployManifestReply,
  type DeployManifestRequest,
  type TriggerJobsReply,
  type TriggerJobsRequest,
} from '#libs/contracts';
import { rpc, SERVICES_CLIENT } from '#libs/service-host';
import {
  jobsById,
  jobVersion,
  type JobRow,
  type JobVersionRow,
} from '../../../scheduling/src/job/read-models/jobs.queries.js';
import type { Principal } from '../auth/authenticator.js';
import { GatewayDatabase } from '../gateway.database.js';
import { JobsService } from './jobs.service.js';

/** A manifest deploy's outcome with the jobs as the read model shows them after it. */
export interface ManifestOutcome {
  reply: DeployManifestReply;
  jobs: Map<string, JobRow>;
  /** The version an updated job had before this deploy, by job id (engine 2's `previous_version`). */
  previousVersions: Map<string, JobVersionRow>;
}

/**
 * Manifest deployments, triggers by ref / selector and backfills (docs/manifest.md): the one
 * application service of these routes (the REST controller; a gRPC method would call the same).
 */
@Injectable()
export class ManifestService {
  constructor(
    @Inject(GatewayDatabase) private readonly db: GatewayDatabase,
    @Inject(SERVICES_CLIENT) private readonly client: ClientProxy,
    @Inject(JobsService) private readonly jobs: JobsService,
  ) {}

  async deploy(
    p: Principal,
    ws: string,
    input: Omit<DeployManifestRequest, 'workspaceId' | 'actor' | 'commandId'>,
    idempotencyKey?: string,
  ): Promise<ManifestOutcome> {
    const reply = await rpc(
      this.client,
      JobRpc.deployManifest,
      {
        ...input,
        workspaceId: ws,
        actor: p.userId,
        commandId: idempotencyKey ? `manifest:${idempotencyKey}` : randomUUID(),
      } satisfies DeployManifestRequest,
      deployManifestReply,
    );
    if (reply.seq > 0) await this.db.waitForProjection('jobs', reply.seq);
    const ids = [...reply.added, ...reply.updated, ...reply.unchanged, ...reply.archived].map((j) => j.jobId);
    const rows = await jobsById(this.db.readModels.jobs, ids);
    const previous = await Promise.all(
      reply.updated.map(async (o) =>
        o.previousVersion === null
          ? undefined
          : jobVersion(this.db.readModels.jobs, o.jobId, String(o.previousVersion)),
      ),
    );
    return {
      reply,
      jobs: new Map(rows.map((r) => [r.id, r])),
      previousVersions: new Map(previous.flatMap((v) => (v ? [[v.job_id, v] as const] : []))),
    };
  }

  async trigger(
    p: Principal,
    ws: string,
    input: Omit<TriggerJobsRequest, 'workspaceId' | 'actor' | 'commandId'>,
    idempotencyKey?: string,
  ): Promise<TriggerJobsReply> {
    const reply = await rpc(
      this.client,
      JobRpc.triggerJobs,
      {
        ...input,
        workspaceId: ws,
        actor: p.userId,
        commandId: idempotencyKey ? `trigger:${idempotencyKey}` : randomUUID(),
      } satisfies TriggerJobsRequest,
      triggerJobsReply,
    );
    if (reply.seq > 0) await this.db.waitForProjection('runs', reply.seq);
    return reply;
  }

  async backfill(
    p: Principal,
    ws: string,
    idOrName: string,
    range: { from: string; to: string },
    idempotencyKey?: string,
  ): Promise<BackfillReply> {
    const job = await this.jobs.require(ws, idOrName);
    const reply = await rpc(
      this.client,
      JobRpc.backfill,
      {
        workspaceId: ws,
        actor: p.userId,
        commandId: idempotencyKey ? `backfill:${idempotencyKey}` : randomUUID(),
        jobId: job.id,
        from: range.from,
        to: range.to,
      } satisfies BackfillRequest,
      backfillReply,
    );
    await this.db.waitForProjection('runs', reply.seq);
    return reply;
  }
}
