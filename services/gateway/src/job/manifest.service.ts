import { Inject, Injectable } from '@nestjs/common';
import type { ClientProxy } from '@nestjs/microservices';
import { randomUUID } from 'node:crypto';
import {
  backfillReply,
  requestRunReply,
  webhookReply,
  type RequestRun,
  type WebhookRequest,
  deployManifestReply,
  JobRpc,
  triggerJobsReply,
  changeBackfillReply,
  type BackfillRequest,
  type ChangeBackfillRequest,
  type DeployManifestReply,
  type DeployManifestRequest,
  type TriggerJobsReply,
  type TriggerJobsRequest,
} from '#libs/contracts';
import { ApiError, notFound } from '#libs/http';
import { rpc, SERVICE_CONTEXT, SERVICES_CLIENT, type ServiceContext } from '#libs/service-host';
import { hashLinkToken, LINK_TOKEN, newLinkToken } from '../interactive/interactive.service.js';
import {
  jobByWebhookHash,
  jobsById,
  jobVersion,
  type JobRow,
  type JobVersionRow,
} from '../../../scheduling/src/job/read-models/jobs.queries.js';
import {
  backfillById,
  type BackfillView,
} from '../../../scheduling/src/job/read-models/backfills.queries.js';
import { isUuid } from '../../../scheduling/src/job/read-models/jobs.queries.js';
import type { Principal } from '../auth/authenticator.js';
import { RunsService } from '../run/runs.service.js';
import { GatewayDatabase } from '../gateway.database.js';
import { JobsService } from './jobs.service.js';

/** A manifest deploy's outcome with the jobs as the read model shows them after it. */
export interface ManifestOutcome {
  reply: DeployManifestReply;
  jobs: Map<string, JobRow>;
  /** The version an updated job had before this deploy, by job id (engine 2's `previous_version`). */
  previousVersions: Map<string, JobVersionRow>;
}

/** What a webhook change answers: the URL only right after enable / rotate (the token is never shown again). */
export interface WebhookResult {
  job: JobRow;
  enabled: boolean;
  url: string | null;
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
    @Inject(SERVICE_CONTEXT) ctx: ServiceContext,
    @Inject(RunsService) private readonly runs: RunsService,
  ) {
    this.publicUrl = ctx.config.publicUrl;
    this.ratePerMinute = ctx.config.webhookRatePerMinute;
  }

  private readonly publicUrl: string;
  private readonly ratePerMinute: number;
  /** Requests per webhook (token hash) in the current minute: a fixed window per gateway. */
  private readonly hookWindows = new Map<string, { start: number; count: number }>();

  /** Enables, rotates or revokes the webhook of a manifest job with a `webhook:` trigger; the token is made here and returned once. */
  async changeWebhook(
    p: Principal,
    ws: string,
    jobRef: string,
    action: 'enable' | 'rotate' | 'revoke',
  ): Promise<WebhookResult> {
    const job = await this.jobs.require(ws, jobRef);
    const token = action === 'revoke' ? undefined : newLinkToken();
    const reply = await rpc(
      this.client,
      JobRpc.webhook,
      {
        workspaceId: ws,
        actor: p.userId,
        commandId: randomUUID(),
        jobId: job.id,
        action,
        ...(token ? { tokenHash: hashLinkToken(token) } : {}),
      } satisfies WebhookRequest,
      webhookReply,
    );
    if (action === 'enable' && !reply.changed)
      throw new ApiError(
        409,
        `job ${job.name} already has a webhook: rotate it to get a new URL (the old one stops working)`,
      );
    await this.db.waitForProjection('jobs', reply.seq);
    return {
      job: (await this.jobs.find(ws, job.id)) ?? job,
      enabled: reply.enabled,
      url: token && reply.changed ? `${this.publicUrl}/hooks/${token}` : null,
    };
  }

  /**
   * `POST /hooks/<token>`: a run of the job whose webhook the token is (trigger `webhook`). Unknown,
   * revoked or malformed tokens are 404 alike; over the rate 429. The idempotency key dedupes.
   */
  async hook(
    token: string,
    payload: string | undefined,
    idempotencyKey?: string,
  ): Promise<{ runId: string; number: number; jobId: string; jobRef: string }> {
    if (!LINK_TOKEN.test(token)) throw notFound('no such webhook');
    const hash = hashLinkToken(token);
    const job = await jobByWebhookHash(this.db.readModels.jobs, hash);
    if (!job) throw notFound('no such webhook');
    const now = Date.now();
    if (this.hookWindows.size > 10_000)
      for (const [h, x] of this.hookWindows) if (now - x.start >= 60_000) this.hookWindows.delete(h);
    const w = this.hookWindows.get(hash);
    if (!w || now - w.start >= 60_000) this.hookWindows.set(hash, { start: now, count: 1 });
    else if (w.count >= this.ratePerMinute)
      throw new ApiError(429, `webhook rate limit: at most ${this.ratePerMinute} requests a minute`, {
        retry_after_seconds: Math.ceil((w.start + 60_000 - now) / 1000),
      });
    else w.count += 1;
    const reply = await rpc(
      this.client,
      JobRpc.requestRun,
      {
        workspaceId: job.workspace_id,
        actor: 'webhook',
        commandId: idempotencyKey ? `webhook:${hash}:${idempotencyKey}` : randomUUID(),
        jobId: job.id,
        trigger: 'webhook',
        profile: null,
        webhookHash: hash,
        ...(payload !== undefined ? { payload } : {}),
      } satisfies RequestRun,
      requestRunReply,
    );
    await this.db.waitForProjection('runs', reply.seq);
    return { runId: reply.runId, number: reply.number, jobId: job.id, jobRef: job.job_ref ?? job.name };
  }

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

  /**
   * Starts a backfill of an interval job (its slices paced by the job's `interval.mode`, docs/manifest.md
   * "Backfills") and answers it as the read model shows it, with the runs requested now.
   */
  async backfill(
    p: Principal,
    ws: string,
    idOrName: string,
    range: { from: string; to: string; reprocess?: boolean },
    idempotencyKey?: string,
  ): Promise<BackfillResult> {
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
        reprocess: range.reprocess ?? false,
      } satisfies BackfillRequest,
      backfillReply,
    );
    await Promise.all([
      this.db.waitForProjection('runs', reply.seq),
      this.db.waitForProjection('backfills', reply.seq),
    ]);
    return this.getBackfill(p, ws, reply.backfillId);
  }

  /** A backfill of the workspace with its slices and progress (404: none). */
  async getBackfill(_p: Principal, ws: string, backfillId: string): Promise<BackfillResult> {
    const b = isUuid(backfillId)
      ? await backfillById(this.db.readModels.backfills, ws, backfillId)
      : undefined;
    if (!b) throw notFound(`backfill ${backfillId} not found`);
    const [job] = await jobsById(this.db.readModels.jobs, [b.job_id]);
    return { backfill: b, jobRef: job?.job_ref ?? job?.name ?? null };
  }

  /**
   * Cancels a backfill (its pending slices are never requested, its runs in flight are cancelled)
   * or resumes a failed one (failed slices retried with new runs). Cancel of a cancelled backfill and
   * resume of a running one change nothing; a completed backfill is a 409.
   */
  async changeBackfill(
    p: Principal,
    ws: string,
    backfillId: string,
    action: 'cancel' | 'resume',
  ): Promise<BackfillResult> {
    const { backfill: b } = await this.getBackfill(p, ws, backfillId);
    if (b.status === 'completed') throw new ApiError(409, `backfill ${backfillId} already completed`);
    if (action === 'cancel' && b.status === 'cancelled') return this.getBackfill(p, ws, backfillId);
    if (action === 'resume' && b.status === 'cancelled')
      throw new ApiError(409, `backfill ${backfillId} was cancelled: start a new one`);
    if (action === 'resume' && b.status === 'running') return this.getBackfill(p, ws, backfillId);
    const reply = await rpc(
      this.client,
      JobRpc.changeBackfill,
      {
        workspaceId: ws,
        actor: p.userId,
        commandId: randomUUID(),
        jobId: b.job_id,
        backfillId: b.id,
        action,
      } satisfies ChangeBackfillRequest,
      changeBackfillReply,
    );
    // The runs still in flight are cancelled like any run; one that ended meanwhile is refused
    // (terminal: 400/409) and left as it ended.
    for (const runId of reply.inFlight)
      await this.runs.cancel(p, ws, runId).catch((err: unknown) => {
        if (!(err instanceof ApiError) || (err.status !== 400 && err.status !== 409)) throw err;
      });
    await Promise.all([
      this.db.waitForProjection('backfills', reply.seq),
      this.db.waitForProjection('runs', reply.seq),
    ]);
    return this.getBackfill(p, ws, backfillId);
  }
}

/** A backfill as the read model shows it, with its job's ref. */
export interface BackfillResult {
  backfill: BackfillView;
  jobRef: string | null;
}
