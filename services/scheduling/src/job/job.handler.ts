import { Inject, Injectable } from '@nestjs/common';
import { randomUUID } from 'node:crypto';
import {
  AggregateTypes,
  type JobEvent,
  type RequestRunReply,
  type RequestRunRequest,
  type UpsertJobReply,
  type UpsertJobRequest,
} from '#libs/contracts';
import { type AggregateRef, type EventStore } from '#libs/eventstore';
import { SERVICE_CONTEXT, type ServiceContext } from '#libs/service-host';
import { CachedAggregates } from './cached-aggregate.js';
import { jobDecider, type JobCommand, type JobState } from './job.decider.js';
import { jobIdFor } from './job-id.js';
import { KeyedLock } from './keyed-lock.js';
import { ReadModelWorkspaceVersions, type WorkspaceVersions } from './workspace-versions.js';

export function jobRef(workspaceId: string, jobId: string): AggregateRef {
  return { workspaceId, type: AggregateTypes.job, id: jobId };
}

/**
 * load → decide → append for the job aggregate. Commands on one job are serialized in this
 * process (run numbers come from the aggregate, so concurrent run requests queue rather than
 * conflict); other processes are handled by the optimistic-concurrency retries.
 */
export class JobCommands {
  private readonly lock = new KeyedLock();
  private readonly aggregates: CachedAggregates<JobState, JobCommand, JobEvent>;

  constructor(
    store: EventStore,
    private readonly versions: WorkspaceVersions,
  ) {
    this.aggregates = new CachedAggregates(store, jobDecider);
  }

  private handle(workspaceId: string, jobId: string, command: JobCommand, commandId: string, actor: string) {
    const ref = jobRef(workspaceId, jobId);
    return this.lock.run(`${workspaceId}/${jobId}`, () =>
      this.aggregates.handle(ref, command, { commandId, actor }),
    );
  }

  async upsert(req: UpsertJobRequest): Promise<UpsertJobReply> {
    const jobId = jobIdFor(req.workspaceId, req.name);
    const r = await this.handle(
      req.workspaceId,
      jobId,
      {
        type: 'UpsertJob',
        jobId,
        versionId: randomUUID(),
        name: req.name,
        description: req.description,
        entryPoint: req.entryPoint,
        kind: req.kind,
        active: req.active,
        profile: req.profile,
        schedule: req.schedule,
        timeoutSeconds: req.timeoutSeconds,
        timezone: req.timezone,
        missedPolicy: req.missedPolicy,
        actor: req.actor,
      },
      req.commandId,
      req.actor,
    );
    const e = r.events[0];
    return {
      jobId,
      version: r.state.version,
      created: e?.type === 'JobCreated',
      changed: e?.type === 'JobUpdated' ? e.data.changed : e?.type === 'JobCreated' ? ['created'] : [],
      seq: r.seq,
    };
  }

  async requestRun(req: RequestRunRequest): Promise<RequestRunReply> {
    const [deployment, configuration] = await Promise.all([
      this.versions.latestDeployment(req.workspaceId),
      this.versions.latestConfiguration(req.workspaceId),
    ]);
    // The caller's view of the entry point (from the read model): checked against the deployment
    // here, and used by the decider only if it is still the job's entry point.
    const checked =
      deployment && req.entryPoint
        ? {
            path: req.entryPoint,
            deployed: await this.versions.deploymentHasFile(req.workspaceId, deployment.id, req.entryPoint),
          }
        : undefined;
    const r = await this.handle(
      req.workspaceId,
      req.jobId,
      {
        type: 'RequestRun',
        runId: randomUUID(),
        trigger: req.trigger,
        profile: req.profile,
        deployment,
        entryPointChecked: checked,
        configuration,
        requestedBy: req.actor,
      },
      req.commandId,
      req.actor,
    );
    const e = r.events.find((x) => x.type === 'RunRequested');
    if (!e || e.type !== 'RunRequested') throw new Error('run request produced no RunRequested event');
    return { runId: e.data.runId, number: e.data.number, seq: r.seq };
  }

  /**
   * A scheduled fire: a run with trigger `schedule` for `fireAt`, command id
   * `fire:<jobId>:<fireAt>` (the Nats-Msg-Id dedupes replicas). null: the job refused it
   * (already fired, inactive, unscheduled, deleted).
   */
  async fire(workspaceId: string, jobId: string, fireAt: Date): Promise<RequestRunReply | null> {
    const [deployment, configuration] = await Promise.all([
      this.versions.latestDeployment(workspaceId),
      this.versions.latestConfiguration(workspaceId),
    ]);
    const iso = fireAt.toISOString();
    const r = await this.handle(
      workspaceId,
      jobId,
      {
        type: 'RequestRun',
        runId: randomUUID(),
        trigger: 'schedule',
        profile: null,
        deployment,
        configuration,
        requestedBy: 'scheduler',
        fireAt: iso,
      },
      `fire:${jobId}:${iso}`,
      'scheduler',
    );
    const e = r.events.find((x) => x.type === 'RunRequested');
    if (!e || e.type !== 'RunRequested') return null;
    return { runId: e.data.runId, number: e.data.number, seq: r.seq };
  }
}

/** The Nest provider around JobCommands. */
@Injectable()
export class JobHandler extends JobCommands {
  constructor(@Inject(SERVICE_CONTEXT) ctx: ServiceContext) {
    super(ctx.store, new ReadModelWorkspaceVersions(ctx.db));
  }
}
