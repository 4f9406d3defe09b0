import { Inject, Injectable } from '@nestjs/common';
import type { ClientProxy } from '@nestjs/microservices';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import {
  JobRpc,
  publicLinkReply,
  wakeJobReply,
  type PublicLinkRequest,
  type WakeJobRequest,
} from '#libs/contracts';
import { ApiError } from '#libs/http';
import { rpc, SERVICES_CLIENT, SERVICE_CONTEXT, type ServiceContext } from '#libs/service-host';
import {
  interactiveAppOfJob,
  type InteractiveApp,
} from '../../../execution/src/run/read-models/runs.queries.js';
import {
  interactiveJobById,
  jobByPublicLinkHash,
  type JobRow,
} from '../../../scheduling/src/job/read-models/jobs.queries.js';
import type { Principal } from '../auth/authenticator.js';
import { IdentityRepository } from '../auth/identity.repository.js';
import { GatewayDatabase } from '../gateway.database.js';
import { JobsService } from '../job/jobs.service.js';

/** SHA-256 (hex) of a public link's token: what the job stores and the events carry. */
export const hashLinkToken = (token: string): string => createHash('sha256').update(token).digest('hex');

/** A new public link token: 32 random bytes, base64url (43 characters, unguessable). */
export const newLinkToken = (): string => randomBytes(32).toString('base64url');

/** A token as it may appear in `/p/<token>/` (anything else is not looked up). */
export const LINK_TOKEN = /^[A-Za-z0-9_-]{43}$/;

export type PublicLinkAction = 'enable' | 'rotate' | 'revoke';

/** What a public link change answers: the URL only right after enable / rotate (the token is never shown again). */
export interface PublicLinkResult {
  job: JobRow;
  enabled: boolean;
  /** `<public URL>/p/<token>/`: enable and rotate only. */
  url: string | null;
}

/** Where a visit to an interactive job stands: its app answers, it is starting, or it cannot start. */
export interface AppStatus {
  jobId: string;
  runId: string | null;
  status: string;
  ready: boolean;
  /** The newest run failed (or was cancelled): the page shows why and waits for a reload. */
  failed: boolean;
  message: string | null;
}

/**
 * Interactive jobs at the gateway: whose app a visit reaches (members through `/i/<job id>/`,
 * anyone with the token through `/p/<token>/`), waking a stopped app, and the public links
 * themselves (enable, rotate, revoke: the job aggregate in scheduling keeps the token's hash).
 * The one application service behind the proxy, the REST routes and the gRPC methods.
 */
@Injectable()
export class InteractiveService {
  readonly publicUrl: string;

  constructor(
    @Inject(GatewayDatabase) private readonly db: GatewayDatabase,
    @Inject(SERVICES_CLIENT) private readonly client: ClientProxy,
    @Inject(IdentityRepository) private readonly identities: IdentityRepository,
    @Inject(JobsService) private readonly jobs: JobsService,
    @Inject(SERVICE_CONTEXT) ctx: ServiceContext,
  ) {
    this.publicUrl = ctx.config.publicUrl;
  }

  /** The interactive job `/i/<jobId>/` names, if the caller is a member of its workspace (else undefined: a 404). */
  async jobForMember(principal: Principal, jobId: string): Promise<JobRow | undefined> {
    const job = await interactiveJobById(this.db.readModels.jobs, jobId);
    if (!job) return undefined;
    const member = await this.identities.membership(job.workspace_id, principal.userId);
    return member ? job : undefined;
  }

  /** The active interactive job a public link token opens (undefined: no such link, revoked, or inactive job). */
  async jobForToken(token: string): Promise<JobRow | undefined> {
    if (!LINK_TOKEN.test(token)) return undefined;
    const job = await jobByPublicLinkHash(this.db.readModels.jobs, hashLinkToken(token));
    return job && job.kind === 'interactive' && job.active ? job : undefined;
  }

  /** The job's newest run and its app's address while running. */
  app(job: JobRow): Promise<InteractiveApp | undefined> {
    return interactiveAppOfJob(this.db.readModels.runs, job.workspace_id, job.id);
  }

  /**
   * A run with trigger `wake`, unless a run of the job is active. The command id names the newest
   * run seen, so every visitor (on every gateway replica) waking the same stopped app sends the
   * same command, which JetStream stores once.
   */
  async wake(job: JobRow, newestRunId: string | null): Promise<string | null> {
    const reply = await rpc(
      this.client,
      JobRpc.wake,
      {
        workspaceId: job.workspace_id,
        jobId: job.id,
        commandId: `wake:${job.id}:${newestRunId ?? 'none'}`,
      } satisfies WakeJobRequest,
      wakeJobReply,
    );
    if (reply.runId) await this.db.waitForProjection('runs', reply.seq).catch(() => undefined);
    return reply.runId;
  }

  /**
   * Where a visit stands; with `wake`, a stopped app (no run, or the newest one completed, e.g.
   * stopped for being idle) is woken. A failed or cancelled newest run is woken only by `wake:
   * 'always'` (a page load), never by the starting page's polling, so a broken app is not
   * restarted in a loop.
   */
  async status(job: JobRow, wake: 'never' | 'stopped' | 'always'): Promise<AppStatus> {
    const app = await this.app(job);
    const active = app && ['pending', 'starting', 'running', 'finalizing'].includes(app.status);
    if (app?.app) return this.statusOf(job, app);
    const stopped = !app || app.status === 'completed' || app.status === 'skipped';
    if (!active && (wake === 'always' || (wake === 'stopped' && stopped))) {
      let runId: string | null;
      try {
        runId = await this.wake(job, app?.runId ?? null);
      } catch (err) {
        const detail = err instanceof Error ? err.message : String(err);
        return { jobId: job.id, runId: null, status: 'failed', ready: false, failed: true, message: detail };
      }
      const now = await this.app(job);
      if (now) return this.statusOf(job, now);
      return { jobId: job.id, runId, status: 'pending', ready: false, failed: false, message: null };
    }
    if (!app)
      return { jobId: job.id, runId: null, status: 'none', ready: false, failed: false, message: null };
    return this.statusOf(job, app);
  }

  private statusOf(job: JobRow, app: InteractiveApp): AppStatus {
    const failed = app.status === 'failed' || app.status === 'cancelled' || app.status === 'cancelling';
    return {
      jobId: job.id,
      runId: app.runId,
      status: app.status,
      ready: app.app !== null,
      failed,
      message: failed ? (app.message ?? `run #${app.number} ${app.status}`) : null,
    };
  }

  /** Enables, rotates or revokes the job's public link; the token is made here and returned once. */
  async changePublicLink(
    p: Principal,
    ws: string,
    jobRef: string,
    action: PublicLinkAction,
  ): Promise<PublicLinkResult> {
    const job = await this.jobs.require(ws, jobRef);
    const token = action === 'revoke' ? undefined : newLinkToken();
    const reply = await rpc(
      this.client,
      JobRpc.publicLink,
      {
        workspaceId: ws,
        actor: p.userId,
        commandId: randomUUID(),
        jobId: job.id,
        action,
        ...(token ? { tokenHash: hashLinkToken(token) } : {}),
      } satisfies PublicLinkRequest,
      publicLinkReply,
    );
    if (action === 'enable' && !reply.changed)
      throw new ApiError(
        409,
        `job ${job.name} already has a public link: rotate it to get a new URL (the old one stops working)`,
      );
    await this.db.waitForProjection('jobs', reply.seq);
    return {
      job: (await this.jobs.find(ws, job.id)) ?? job,
      enabled: reply.enabled,
      url: token && reply.changed ? `${this.publicUrl}/p/${token}/` : null,
    };
  }

  /** The dlt CLI's `publish` (0.26.1): a link when there is none, else a new one (the only way to show a URL again). */
  async publish(p: Principal, ws: string, jobRef: string): Promise<PublicLinkResult> {
    const job = await this.jobs.require(ws, jobRef);
    return this.changePublicLink(p, ws, job.id, job.public_link_hash ? 'rotate' : 'enable');
  }
}
