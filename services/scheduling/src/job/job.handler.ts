import { Inject, Injectable, Logger } from '@nestjs/common';
import { randomUUID } from 'node:crypto';
import {
  AggregateTypes,
  DASHBOARD_ENTRY_POINT,
  DASHBOARD_JOB_NAME,
  type RequestRunReply,
  type DeleteJobReply,
  type DeleteJobRequest,
  type PublicLinkReply,
  type PublicLinkRequest,
  type WebhookReply,
  type WebhookRequest,
  type RequestRun,
  type WakeJobReply,
  type WakeJobRequest,
  type UpsertJobReply,
  type UpsertJobRequest,
} from '#libs/contracts';
import { CommandHandler, type AggregateRef, type EventStore } from '#libs/eventstore';
import { SERVICE_CONTEXT, type ServiceContext } from '#libs/service-host';
import { SchedulingDb } from '../scheduling.db.js';
import { jobDecider, type JobCommand, type JobState, type UpstreamState } from './job.decider.js';
import type { JobEvent } from './job.events.js';
import { jobIdFor } from './job-id.js';
import { JobSnapshots } from './job-snapshots.js';
import { ManifestJobs } from './manifest.handler.js';
import type { JobsReadModel } from './read-models/jobs.queries.js';
import { withTables } from '#libs/database';
import { LatestVersions, RunVersions, type WorkspaceVersions } from './workspace-versions.js';

const logger = new Logger('scheduling');

/**
 * A message on a job's subject that is not a commit (garbage) is passed over by the prewarm: the
 * job it sits on is then cached one commit behind, so its next append conflicts and reads the job
 * again, which fails on that job alone instead of on every job.
 */
function onUndecodable(m: { seq: number; subject: string }, err: unknown): void {
  logger.warn(`prewarm: message ${m.seq} on ${m.subject} is not a readable commit: ${String(err)}`);
}

export interface JobCommandsOptions {
  /** prewarm: up to this many cold jobs are read one by one; more with one replay of the job streams (200). */
  prewarmOneByOne?: number;
  /** Where job snapshots are kept (none: a start replays every job's history). */
  snapshots?: JobSnapshots;
  /** prewarm replays at most this many of the latest stream messages after the snapshots (100,000). */
  replayWindow?: number;
  /** A new or changed schedule must not fire more often (seconds; 0 or unset: no limit). */
  minScheduleIntervalSeconds?: number;
}

export function jobRef(workspaceId: string, jobId: string): AggregateRef {
  return { workspaceId, type: AggregateTypes.job, id: jobId };
}

/**
 * The job aggregate's commands through the lib's CommandHandler (folded states kept in memory: a
 * job's stream holds one commit per run request; snapshots in job_snapshots). Commands on one job
 * are serialized in this process (run numbers come from the aggregate, so concurrent run requests
 * queue rather than conflict); other processes are handled by the optimistic-concurrency retries.
 */
export class JobCommands {
  private readonly prewarmOneByOne: number;
  private readonly snapshots: JobSnapshots | undefined;
  private readonly replayWindow: number;
  private readonly minScheduleIntervalSeconds: number;
  private readonly aggregates: CommandHandler<JobState, JobCommand, JobEvent>;
  private readonly runVersions: RunVersions;

  constructor(
    private readonly store: EventStore,
    private readonly versions: WorkspaceVersions,
    opts: JobCommandsOptions = {},
  ) {
    this.prewarmOneByOne = opts.prewarmOneByOne ?? 200;
    this.snapshots = opts.snapshots;
    this.replayWindow = opts.replayWindow ?? 100_000;
    this.minScheduleIntervalSeconds = opts.minScheduleIntervalSeconds ?? 0;
    this.runVersions = new RunVersions(versions);
    this.aggregates = new CommandHandler(store, jobDecider, {
      // Many replicas firing the same jobs: conflicts are expected, each retry catches up cheaply.
      maxRetries: 50,
      cache: {},
      ...(this.snapshots ? { snapshots: this.snapshots } : {}),
    });
  }

  private handle(
    workspaceId: string,
    jobId: string,
    command: JobCommand,
    commandId: string,
    actor: string,
    optimistic = false,
  ) {
    return this.aggregates.handle(jobRef(workspaceId, jobId), command, { commandId, actor }, { optimistic });
  }

  /** Any job command (the manifest commands, manifest.handler.ts): load → decide → append. */
  command(workspaceId: string, jobId: string, command: JobCommand, commandId: string, actor: string) {
    return this.handle(workspaceId, jobId, command, commandId, actor);
  }

  /** The events a command would decide now, without appending (dry runs). Throws what the decider throws. */
  async decideOnly(workspaceId: string, jobId: string, command: JobCommand): Promise<JobEvent[]> {
    const { state } = await this.aggregates.load(jobRef(workspaceId, jobId));
    return jobDecider.decide(command, state);
  }

  /** The job's state, caught up with its stream. */
  async stateOf(workspaceId: string, jobId: string): Promise<JobState> {
    return (await this.aggregates.load(jobRef(workspaceId, jobId))).state;
  }

  /** The states of the upstream jobs of a job's freshness constraints (caught up with their streams). */
  async upstreamsOf(workspaceId: string, refs: readonly string[]): Promise<UpstreamState[]> {
    return Promise.all(
      refs.map(async (ref) => {
        const st = await this.stateOf(workspaceId, jobIdFor(workspaceId, ref));
        const spec = st.exists ? st.spec : undefined;
        return {
          jobRef: ref,
          exists: spec !== undefined && !spec.manifest?.archived,
          kind: spec?.kind ?? null,
          schedule: spec?.schedule ?? null,
          timezone: spec?.timezone ?? 'UTC',
          defaultTrigger: spec?.manifest?.defaultTrigger ?? null,
          lastIntervalEnd: st.lastIntervalEnd ?? null,
        };
      }),
    );
  }

  /**
   * Called after a run end was noted on its job (the state before the note is given): the manifest
   * reactions (refresh cascade, job.success / job.fail chains), set by JobHandler.
   */
  afterRunEnded?: (
    workspaceId: string,
    runId: string,
    ended: { status: string; refresh: boolean },
    commandId: string,
    job: JobState,
  ) => Promise<void>;

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
        overlapPolicy: req.overlapPolicy,
        actor: req.actor,
        minScheduleIntervalSeconds: this.minScheduleIntervalSeconds,
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

  /**
   * The workspace's `dashboard` job (docs/interactive.md), created once: a job of that name that
   * exists or was deleted is left as it is. Returns whether it was created now.
   */
  async ensureDashboardJob(workspaceId: string, commandId: string): Promise<boolean> {
    const jobId = jobIdFor(workspaceId, DASHBOARD_JOB_NAME);
    const r = await this.handle(
      workspaceId,
      jobId,
      {
        type: 'EnsureJob',
        jobId,
        versionId: randomUUID(),
        name: DASHBOARD_JOB_NAME,
        description: "dlt's pipeline dashboard for this workspace's pipelines (built in)",
        entryPoint: DASHBOARD_ENTRY_POINT,
        kind: 'interactive',
        actor: 'runway',
      },
      commandId,
      'runway',
    );
    return r.events.length > 0 && !r.duplicate;
  }

  async delete(req: DeleteJobRequest): Promise<DeleteJobReply> {
    const r = await this.handle(
      req.workspaceId,
      req.jobId,
      { type: 'DeleteJob', actor: req.actor },
      req.commandId,
      req.actor,
    );
    return { jobId: req.jobId, seq: r.seq };
  }

  async publicLink(req: PublicLinkRequest): Promise<PublicLinkReply> {
    const r = await this.handle(
      req.workspaceId,
      req.jobId,
      {
        type: 'ChangePublicLink',
        action: req.action,
        ...(req.tokenHash ? { tokenHash: req.tokenHash } : {}),
        actor: req.actor,
      },
      req.commandId,
      req.actor,
    );
    return {
      jobId: req.jobId,
      enabled: r.state.publicLinkHash !== null,
      changed: r.events.length > 0,
      seq: r.seq,
    };
  }

  async webhook(req: WebhookRequest): Promise<WebhookReply> {
    const r = await this.handle(
      req.workspaceId,
      req.jobId,
      {
        type: 'ChangeWebhook',
        action: req.action,
        ...(req.tokenHash ? { tokenHash: req.tokenHash } : {}),
        actor: req.actor,
      },
      req.commandId,
      req.actor,
    );
    return {
      jobId: req.jobId,
      enabled: (r.state.webhookHash ?? null) !== null,
      changed: r.events.length > 0,
      seq: r.seq,
    };
  }

  /** A wake run (null: a run of the job is already active). */
  async wake(req: WakeJobRequest): Promise<WakeJobReply> {
    const [deployment, configuration] = await this.runVersions.latest(req.workspaceId);
    const r = await this.handle(
      req.workspaceId,
      req.jobId,
      { type: 'WakeJob', runId: randomUUID(), deployment, configuration },
      req.commandId,
      'wake',
    );
    const e = r.events.find((x) => x.type === 'RunRequested');
    return { runId: e?.type === 'RunRequested' ? e.data.runId : null, seq: r.seq };
  }

  async requestRun(req: RequestRun): Promise<RequestRunReply> {
    const [deployment, configuration] = await this.runVersions.latest(req.workspaceId);
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
        ...(req.webhookHash !== undefined ? { webhookHash: req.webhookHash } : {}),
        ...(req.payload !== undefined ? { payload: req.payload } : {}),
      },
      req.commandId,
      req.actor,
    );
    const e = r.events.find((x) => x.type === 'RunRequested');
    if (!e || e.type !== 'RunRequested') throw new Error('run request produced no RunRequested event');
    return { runId: e.data.runId, number: e.data.number, seq: r.seq };
  }

  /**
   * Loads the given jobs that are not in memory yet, so that their first fires do not each read
   * their job's history at the fire time (2,000 jobs due at the same second): many (a start) with
   * ONE replay of the job streams, a few (jobs just created) one by one. Returns how many were loaded.
   */
  async prewarm(jobs: readonly { workspaceId: string; jobId: string }[]): Promise<number> {
    const cold = jobs.map((j) => jobRef(j.workspaceId, j.jobId)).filter((ref) => !this.aggregates.has(ref));
    if (cold.length === 0) return 0;
    if (cold.length <= this.prewarmOneByOne) {
      await this.oneByOne(cold, (ref) => this.aggregates.warm(ref));
      return cold.length;
    }
    // Many: their snapshots, then ONE replay of the job streams from the oldest snapshot on (at
    // most the last replayWindow messages: a job with an older snapshot, one that rarely
    // changes, catches up on its own). From the beginning when too many jobs have no snapshot.
    const key = (r: { workspaceId: string; id: string }) => `${r.workspaceId}/${r.id}`;
    const wanted = new Set(cold.map(key));
    const snaps = this.snapshots
      ? (await this.snapshots.read(cold.map((r) => r.id)))
          .filter((sn) => wanted.has(`${sn.workspaceId}/${sn.jobId}`))
          .map((sn) => ({ ref: jobRef(sn.workspaceId, sn.jobId), state: sn.state, lastSeq: sn.lastSeq }))
      : [];
    const snapped = new Set(snaps.map((sn) => key(sn.ref)));
    const without = cold.filter((r) => !snapped.has(key(r)));
    if (snaps.length === 0 || without.length > this.prewarmOneByOne) {
      return this.aggregates.prime(
        this.store.replay({ aggregateType: AggregateTypes.job, onUndecodable }),
        (ref) => wanted.has(key(ref)),
      );
    }
    const from = Math.max(
      Math.min(...snaps.map((sn) => sn.lastSeq)) + 1,
      (await this.store.lastSequence()) - this.replayWindow,
    );
    const replayed = snaps.filter((sn) => sn.lastSeq + 1 >= from);
    const quiet = snaps.filter((sn) => sn.lastSeq + 1 < from);
    const n = await this.aggregates.prime(
      this.store.replay({ aggregateType: AggregateTypes.job, fromSeq: from, onUndecodable }),
      (ref) => wanted.has(key(ref)),
      replayed,
      true,
    );
    await this.oneByOne(quiet, (sn) => this.aggregates.warmFrom(sn));
    await this.oneByOne(without, (ref) => this.aggregates.warm(ref));
    return n + quiet.length + without.length;
  }

  /** Runs `f` for each item, 8 at a time (the handler serializes each with the job's commands). */
  private async oneByOne<T>(items: readonly T[], f: (item: T) => Promise<void>): Promise<void> {
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < items.length) await f(items[next++]!);
    };
    await Promise.all(Array.from({ length: 8 }, worker));
  }

  /**
   * Stores a snapshot of every job in memory whose state moved since its last one, so that the
   * next start reads the snapshots and only the commits after them. Returns how many were written.
   */
  async writeSnapshots(): Promise<number> {
    if (!this.snapshots) return 0;
    const changed = this.aggregates.changedSinceSnapshot();
    if (changed.length === 0) return 0;
    await this.snapshots.write(
      changed.map((c) => ({
        workspaceId: c.ref.workspaceId,
        jobId: c.ref.id,
        lastSeq: c.lastSeq,
        state: c.state,
      })),
    );
    this.aggregates.markSnapshotted(changed);
    return changed.length;
  }

  /**
   * A scheduled fire: a run with trigger `schedule` for `fireAt`, command id
   * `fire:<jobId>:<fireAt>` (the Nats-Msg-Id dedupes replicas). null: no run was requested
   * (already fired, inactive, unscheduled, deleted, or skipped / queued by the overlap policy, or
   * recorded as skipped because it could not run).
   */
  async fire(workspaceId: string, jobId: string, fireAt: Date): Promise<RequestRunReply | null> {
    const r = await this.fireOutcome(workspaceId, jobId, fireAt);
    return r.outcome === 'requested' ? { runId: r.runId!, number: r.number!, seq: r.seq } : null;
  }

  /** A scheduled fire and what became of it. */
  async fireOutcome(workspaceId: string, jobId: string, fireAt: Date): Promise<FireOutcome> {
    const [deployment, configuration, deployedFiles] = await this.runVersions.forFire(workspaceId);
    const iso = fireAt.toISOString();
    // A manifest job with freshness constraints is given its upstreams' states (job aggregates).
    const freshness = this.aggregates.peek(jobRef(workspaceId, jobId))?.spec?.manifest?.freshness ?? [];
    const upstreams = freshness.length > 0 ? await this.upstreamsOf(workspaceId, freshness) : undefined;
    const r = await this.handle(
      workspaceId,
      jobId,
      {
        type: 'RequestRun',
        runId: randomUUID(),
        trigger: 'schedule',
        profile: null,
        deployment,
        deployedFiles,
        configuration,
        requestedBy: 'scheduler',
        fireAt: iso,
        ...(upstreams ? { upstreams } : {}),
      },
      `fire:${jobId}:${iso}`,
      'scheduler',
      true,
    );
    const e = r.events[0];
    if (!e) return { outcome: 'none', seq: r.seq };
    switch (e.type) {
      case 'RunRequested':
        return { outcome: 'requested', runId: e.data.runId, number: e.data.number, seq: r.seq };
      case 'ScheduledRunSkipped':
        return {
          outcome: 'skipped',
          runId: e.data.runId,
          number: e.data.number,
          reason: e.data.reason,
          seq: r.seq,
        };
      case 'FireQueued':
        return { outcome: 'queued', seq: r.seq };
      default:
        return { outcome: 'none', seq: r.seq };
    }
  }

  /**
   * A run of the job ended (from the run's events, by the run-end reactor): the job stops counting
   * it as active, and requests its queued fire if one waits. Idempotent by `commandId` (the
   * reactor's, derived from the run's end event).
   */
  async noteRunEnded(
    workspaceId: string,
    jobId: string,
    runId: string,
    status: string,
    commandId: string,
  ): Promise<void> {
    const [deployment, configuration, deployedFiles] = await this.runVersions.forFire(workspaceId);
    const r = await this.handle(
      workspaceId,
      jobId,
      {
        type: 'NoteRunEnded',
        runId,
        status,
        nextRunId: randomUUID(),
        deployment,
        deployedFiles,
        configuration,
      },
      commandId,
      'scheduler',
    );
    // The note's own result (a retried command gets its original events back): the manifest
    // reactions follow a run end the job really noted, also when an earlier attempt failed after it.
    const e = r.events.find((x) => x.type === 'RunEnded' && x.data.runId === runId);
    if (this.afterRunEnded && e?.type === 'RunEnded')
      await this.afterRunEnded(
        workspaceId,
        runId,
        { status, refresh: e.data.refresh ?? false },
        commandId,
        r.state,
      );
  }
}

/** What a scheduled fire did: requested a run, recorded a skipped one, queued it, or nothing (already handled, not scheduled). */
export interface FireOutcome {
  outcome: 'requested' | 'skipped' | 'queued' | 'none';
  runId?: string;
  number?: number;
  reason?: string;
  seq: number;
}

/** The Nest provider around JobCommands, with the manifest use cases (manifest.handler.ts). */
@Injectable()
export class JobHandler extends JobCommands {
  readonly manifest: ManifestJobs;

  constructor(@Inject(SERVICE_CONTEXT) ctx: ServiceContext, @Inject(SchedulingDb) db: SchedulingDb) {
    const versions = new LatestVersions(db.kysely, {
      store: ctx.store,
      waitForProjection: (name, seq) => ctx.waitForProjection(name, seq),
    });
    super(ctx.store, versions, {
      snapshots: new JobSnapshots(db.kysely),
      minScheduleIntervalSeconds: ctx.config.scheduler.minIntervalSeconds,
    });
    this.manifest = new ManifestJobs(this, withTables<JobsReadModel>(ctx.db), new RunVersions(versions), {
      minScheduleIntervalSeconds: ctx.config.scheduler.minIntervalSeconds,
      log: (m) => logger.warn(m),
    });
    this.afterRunEnded = (ws, runId, ended, commandId, job) =>
      this.manifest.afterRunEnded(ws, runId, ended, commandId, job);
  }
}
