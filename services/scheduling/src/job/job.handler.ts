import { Inject, Injectable, Logger } from '@nestjs/common';
import { randomUUID } from 'node:crypto';
import type { Kysely } from 'kysely';
import {
  AggregateTypes,
  type JobEvent,
  type RequestRunReply,
  type DeleteJobReply,
  type DeleteJobRequest,
  type RequestRun,
  type UpsertJobReply,
  type UpsertJobRequest,
} from '#libs/contracts';
import { type AggregateRef, type EventStore } from '#libs/eventstore';
import { SERVICE_CONTEXT, type ServiceContext } from '#libs/service-host';
import { CachedAggregates } from './cached-aggregate.js';
import { jobDecider, type JobCommand, type JobState } from './job.decider.js';
import { jobIdFor } from './job-id.js';
import { JobSnapshots } from './job-snapshots.js';
import { KeyedLock } from './keyed-lock.js';
import type { SchedulingTables } from '../migrations/index.js';
import { ReadModelWorkspaceVersions, type WorkspaceVersions } from './workspace-versions.js';

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
 * load → decide → append for the job aggregate. Commands on one job are serialized in this
 * process (run numbers come from the aggregate, so concurrent run requests queue rather than
 * conflict); other processes are handled by the optimistic-concurrency retries.
 */
export class JobCommands {
  private readonly lock = new KeyedLock();
  private readonly prewarmOneByOne: number;
  private readonly snapshots: JobSnapshots | undefined;
  private readonly replayWindow: number;
  private readonly minScheduleIntervalSeconds: number;
  private readonly aggregates: CachedAggregates<JobState, JobCommand, JobEvent>;

  constructor(
    private readonly store: EventStore,
    private readonly versions: WorkspaceVersions,
    opts: JobCommandsOptions = {},
  ) {
    this.prewarmOneByOne = opts.prewarmOneByOne ?? 200;
    this.snapshots = opts.snapshots;
    this.replayWindow = opts.replayWindow ?? 100_000;
    this.minScheduleIntervalSeconds = opts.minScheduleIntervalSeconds ?? 0;
    this.aggregates = new CachedAggregates(store, jobDecider);
  }

  /**
   * The workspace's latest deployment (with its files) and configuration for scheduled fires, read at most every
   * 200 ms per workspace (thousands of jobs of one workspace fire at the same second). A fire in
   * the same 200 ms as a new deployment may use the previous one.
   */
  private readonly recentVersions = new Map<
    string,
    {
      at: number;
      value: Promise<
        readonly [
          Awaited<ReturnType<WorkspaceVersions['latestDeployment']>>,
          Awaited<ReturnType<WorkspaceVersions['latestConfiguration']>>,
          ReadonlySet<string> | undefined,
        ]
      >;
    }
  >();

  private latestVersions(workspaceId: string) {
    const now = Date.now();
    const hit = this.recentVersions.get(workspaceId);
    if (hit && now - hit.at < 200) return hit.value;
    const value = Promise.all([
      this.versions.latestDeployment(workspaceId),
      this.versions.latestConfiguration(workspaceId),
    ]).then(async ([deployment, configuration]) => {
      const files = deployment ? await this.filesOf(workspaceId, deployment.id) : undefined;
      return [deployment, configuration, files] as const;
    });
    this.recentVersions.set(workspaceId, { at: now, value });
    value.catch(() => this.recentVersions.delete(workspaceId));
    if (this.recentVersions.size > 10_000) this.recentVersions.clear();
    return value;
  }

  /** The files of a deployment, read once per deployment (they never change), the latest few kept. */
  private readonly deploymentFiles = new Map<string, Promise<ReadonlySet<string> | undefined>>();

  private filesOf(workspaceId: string, deploymentId: string): Promise<ReadonlySet<string> | undefined> {
    if (!this.versions.deploymentFiles) return Promise.resolve(undefined);
    let files = this.deploymentFiles.get(deploymentId);
    if (!files) {
      files = this.versions.deploymentFiles(workspaceId, deploymentId);
      files.catch(() => this.deploymentFiles.delete(deploymentId));
      if (this.deploymentFiles.size >= 16)
        this.deploymentFiles.delete(this.deploymentFiles.keys().next().value!);
      this.deploymentFiles.set(deploymentId, files);
    }
    return files;
  }

  private handle(
    workspaceId: string,
    jobId: string,
    command: JobCommand,
    commandId: string,
    actor: string,
    optimistic = false,
  ) {
    const ref = jobRef(workspaceId, jobId);
    return this.lock.run(`${workspaceId}/${jobId}`, () =>
      this.aggregates.handle(ref, command, { commandId, actor }, 50, optimistic),
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

  async requestRun(req: RequestRun): Promise<RequestRunReply> {
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
    await this.oneByOne(
      quiet,
      (sn) => this.aggregates.warmFrom(sn),
      (sn) => sn.ref,
    );
    await this.oneByOne(without, (ref) => this.aggregates.warm(ref));
    return n + quiet.length + without.length;
  }

  /** Runs `f` for each item, 8 at a time, under the job's lock (`refOf`: the item's job). */
  private async oneByOne<T>(
    items: readonly T[],
    f: (item: T) => Promise<void>,
    refOf: (item: T) => AggregateRef = (item) => item as AggregateRef,
  ): Promise<void> {
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < items.length) {
        const item = items[next++]!;
        const ref = refOf(item);
        await this.lock.run(`${ref.workspaceId}/${ref.id}`, () => f(item));
      }
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
    const [deployment, configuration, deployedFiles] = await this.latestVersions(workspaceId);
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
        deployedFiles,
        configuration,
        requestedBy: 'scheduler',
        fireAt: iso,
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
   * A run of the job ended (from the run's events): the job stops counting it as active, and
   * requests its queued fire if one waits. Idempotent (command id `ended:<runId>`).
   */
  async noteRunEnded(workspaceId: string, jobId: string, runId: string, status: string): Promise<void> {
    const [deployment, configuration, deployedFiles] = await this.latestVersions(workspaceId);
    await this.handle(
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
      `ended:${runId}`,
      'scheduler',
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

/** The Nest provider around JobCommands. */
@Injectable()
export class JobHandler extends JobCommands {
  constructor(@Inject(SERVICE_CONTEXT) ctx: ServiceContext) {
    super(ctx.store, new ReadModelWorkspaceVersions(ctx.db), {
      snapshots: new JobSnapshots(ctx.db as Kysely<SchedulingTables>),
      minScheduleIntervalSeconds: ctx.config.scheduler.minIntervalSeconds,
    });
  }
}
