import { z } from 'zod';
import { DomainError, NotFoundError, type Decider } from '#libs/eventstore';
import { isFireTime, nextFire as nextFireOf, prevFire, shortestInterval } from '../scheduler/cron.js';
import { parseTimeRule } from '../scheduler/time-rule.js';
import {
  isBuiltInEntryPoint,
  type JobManifest,
  type RunInterval,
  type RunLaunch,
  type MissedPolicy,
  type OverlapPolicy,
  type JobKind,
  type JobSpec,
  type RunTrigger,
  type VersionRef,
} from '#libs/contracts';
import { evolveFireBook } from './fire-book.js';
import { checkProfile, SPEC_FIELDS, specOf } from './job-spec.js';
import { manifestJobSpec, type JobDefinition } from './manifest.js';
import type { JobEvent } from './job.events.js';
import {
  backfillRunId,
  coalesce,
  covered,
  evolveBackfills,
  MAX_BACKFILL_CONCURRENCY,
  MAX_BACKFILL_SLICES,
  sliceOfRun,
  type BackfillBook,
  type BackfillState,
} from './backfill-state.js';

/** dlt's built-in profiles: always valid for a run, configured or not. */
export const BUILT_IN_PROFILES = ['dev', 'prod', 'access', 'tests'] as const;

/** The profile a run of this kind uses when neither the request nor the job names one. */
export function defaultProfile(kind: JobKind): string {
  return kind === 'batch' ? 'prod' : 'access';
}

/**
 * Upsert of a job by name. Fields left `undefined` keep their current value (a new job takes the
 * default); `null` clears profile, schedule and timeout.
 */
export interface UpsertJob {
  type: 'UpsertJob';
  jobId: string;
  /** Id the new version gets, if the upsert changes anything. */
  versionId: string;
  name: string;
  description: string;
  entryPoint: string;
  kind: JobKind;
  active?: boolean;
  profile?: string | null;
  schedule?: string | null;
  timeoutSeconds?: number | null;
  /** IANA zone of the schedule; undefined keeps the current one (new job: UTC). */
  timezone?: string;
  missedPolicy?: MissedPolicy;
  overlapPolicy?: OverlapPolicy;
  actor: string;
  /**
   * The server's shortest schedule interval (RUNWAY_MIN_SCHEDULE_INTERVAL_SECONDS): a new or
   * changed schedule firing more often is refused (422). Unset: no limit.
   */
  minScheduleIntervalSeconds?: number;
}

export interface RequestRun {
  type: 'RequestRun';
  runId: string;
  trigger: RunTrigger;
  /** Profile asked for in the request; null = the job's. */
  profile: string | null;
  /** The workspace's latest deployment (null: nothing deployed yet). */
  deployment: VersionRef | null;
  /** Whether `path` is a file of that deployment (deployed undefined: cannot be told); used when `path` is the job's entry point. */
  entryPointChecked?: { path: string; deployed: boolean | undefined };
  /** Scheduled fires: the files of that deployment (undefined: not checked); the entry point must be one. */
  deployedFiles?: ReadonlySet<string>;
  /** The latest configuration and the profiles it defines (null: none uploaded yet). */
  configuration: (VersionRef & { profiles: readonly string[] }) | null;
  requestedBy: string;
  /**
   * Scheduled runs: the fire time (ISO). A fire time at or before the job's last one, or a job no
   * longer active or scheduled, decides nothing (no error): replicas and retries are no-ops.
   */
  fireAt?: string;
  /** Manifest jobs: the trigger string that makes the run (a fire: the job's time trigger). */
  triggerSource?: string;
  /** When the request is decided (ISO): the `[now, now)` interval of event and manual runs. */
  now?: string;
  /** Manifest jobs: the state of each upstream of the job's freshness constraints (undefined: not checked). */
  upstreams?: readonly UpstreamState[];
  /** Ask for a refresh (the run restarts from `interval.start`). */
  refresh?: boolean;
  /** Backfill: the run's interval as given (not computed). */
  interval?: RunInterval;
  /** Trigger webhook: the hash of the token the hook was called with. */
  webhookHash?: string;
  /** Trigger webhook: the posted JSON body. */
  payload?: string;
}

/** An upstream job of a freshness constraint, as its own aggregate has it. */
export interface UpstreamState {
  jobRef: string;
  exists: boolean;
  kind: JobKind | null;
  /** Its schedule (cron or time rule) and zone. */
  schedule: string | null;
  timezone: string;
  defaultTrigger: string | null;
  /** The interval end of its last successful run (null: never, or reset by a refresh). */
  lastIntervalEnd: string | null;
}

/** A manifest's job definition: creates, updates (un-archives) or leaves the job. */
export interface DeployManifestJob {
  type: 'DeployManifestJob';
  jobId: string;
  versionId: string;
  definition: JobDefinition;
  engineVersion: 1 | 2;
  definitionHash: string;
  deploymentModule: string | null;
  /** ISO: the anchor of a new `every:` trigger. */
  now: string;
  actor: string;
  minScheduleIntervalSeconds?: number;
}

/** The job's deployment module no longer lists it: it stops firing, keeps its history. */
export interface ArchiveJob {
  type: 'ArchiveJob';
  versionId: string;
  actor: string;
}

/** A refresh propagated from an upstream (dlt's refresh cascade): the next run restarts its interval. */
export interface MarkRefreshPending {
  type: 'MarkRefreshPending';
  /** The job ref whose run started the cascade. */
  cause: string;
}

/**
 * A backfill of an interval job (docs/manifest.md "Backfills"): the tick intervals of its time
 * trigger in `[from, to)` not completed yet (all of them with `reprocess`), paced by the job's
 * `interval.mode` (sequential: one slice at a time; parallel: up to `execute.concurrency`).
 */
export interface StartBackfill {
  type: 'StartBackfill';
  backfillId: string;
  from: string;
  to: string;
  /** Also the intervals a run of the job already completed (and those another backfill holds). */
  reprocess: boolean;
  deployment: VersionRef | null;
  configuration: (VersionRef & { profiles: readonly string[] }) | null;
  requestedBy: string;
}

/** Cancels a backfill: its pending slices are never requested; the runs in flight are named for cancelling. */
export interface CancelBackfill {
  type: 'CancelBackfill';
  backfillId: string;
  actor: string;
}

/** A failed backfill goes on: failed slices retried (new runs), the pending ones requested as its mode allows. */
export interface ResumeBackfill {
  type: 'ResumeBackfill';
  backfillId: string;
  deployment: VersionRef | null;
  configuration: (VersionRef & { profiles: readonly string[] }) | null;
  actor: string;
}

/**
 * A run of this job reached a terminal status (from the run's own events). Frees the job for
 * overlap; when it was the last active run and a fire is queued, that fire is requested now (with
 * the deployment / configuration the handler read for it).
 */
export interface NoteRunEnded {
  type: 'NoteRunEnded';
  runId: string;
  status: string;
  /** Run id for the queued fire, if one gets requested. */
  nextRunId: string;
  deployment: VersionRef | null;
  /** The files of that deployment (undefined: not checked). */
  deployedFiles?: ReadonlySet<string>;
  configuration: (VersionRef & { profiles: readonly string[] }) | null;
}

/** Enable, rotate or revoke the webhook of a manifest job with a `webhook:` trigger (the token's hash only). */
export interface ChangeWebhook {
  type: 'ChangeWebhook';
  action: 'enable' | 'rotate' | 'revoke';
  /** SHA-256 of the new token (enable, rotate). */
  tokenHash?: string;
  actor: string;
}

/** Deletes the job: no more fires or runs; history stays; the name can be created again. */
export interface DeleteJob {
  type: 'DeleteJob';
  actor: string;
}

/** Enable, rotate or revoke the job's public link; the gateway made the token, only its hash comes here. */
export interface ChangePublicLink {
  type: 'ChangePublicLink';
  action: 'enable' | 'rotate' | 'revoke';
  /** SHA-256 of the new token (enable, rotate). */
  tokenHash?: string;
  actor: string;
}

/**
 * A visit to an interactive job whose app is not running: a run with trigger `wake`, unless a run
 * of the job is still active (then nothing: one wake at a time, however many visitors).
 */
export interface WakeJob {
  type: 'WakeJob';
  runId: string;
  deployment: VersionRef | null;
  configuration: (VersionRef & { profiles: readonly string[] }) | null;
}

/**
 * Creates a job Runway gives every workspace (the interactive `dashboard`) unless a job of that
 * name exists or ever existed: a user's own job of the name, or their deletion of it, stands.
 */
export interface EnsureJob {
  type: 'EnsureJob';
  jobId: string;
  versionId: string;
  name: string;
  description: string;
  entryPoint: string;
  kind: JobKind;
  actor: string;
}

export type JobCommand =
  | UpsertJob
  | RequestRun
  | NoteRunEnded
  | DeleteJob
  | DeployManifestJob
  | ArchiveJob
  | MarkRefreshPending
  | StartBackfill
  | CancelBackfill
  | ResumeBackfill
  | EnsureJob
  | ChangePublicLink
  | ChangeWebhook
  | WakeJob;

export interface JobState extends BackfillBook {
  exists: boolean;
  jobId: string;
  version: number;
  versionId: string;
  spec: JobSpec | undefined;
  /** Number of the last run requested (0: none): the next is this + 1. */
  lastRunNumber: number;
  /** The last fire time handled (requested, skipped or queued; ISO), null: none. */
  lastFireAt: string | null;
  /** Runs requested and not yet noted as ended (any trigger), oldest first. */
  activeRuns: string[];
  /** Overlap policy `queue`: the fire time waiting for the active runs to end. */
  queuedFireAt: string | null;
  /** SHA-256 of the public link's token (null: no public link). */
  publicLinkHash: string | null;
  /** Manifest jobs with a `webhook:` trigger: SHA-256 of the webhook's token (null/absent: none). */
  webhookHash?: string | null;
  /** Manifest jobs: the interval end of the last successful run (null: none, or reset by a refresh). */
  lastIntervalEnd?: string | null;
  /** Manifest jobs: active runs' intervals and whether they refresh (by run id; `start` absent in old snapshots). */
  runIntervals?: Record<string, { start?: string | null; end: string | null; refresh: boolean }>;
  /** Manifest jobs: a refresh reached this job; its next run refreshes. */
  refreshPending?: boolean;
}

const initialState = (): JobState => ({
  exists: false,
  jobId: '',
  version: 0,
  versionId: '',
  spec: undefined,
  lastRunNumber: 0,
  lastFireAt: null,
  activeRuns: [],
  queuedFireAt: null,
  publicLinkHash: null,
});

function evolve(state: JobState, event: JobEvent): JobState {
  const book = evolveFireBook(state, event);
  switch (event.type) {
    case 'JobCreated':
      return {
        ...state,
        exists: true,
        jobId: event.data.jobId,
        version: event.data.version,
        versionId: event.data.versionId,
        spec: event.data.spec,
      };
    case 'JobDeleted':
      // Numbers and the last fire time stay: a job created again continues them (no run number or fire time twice).
      return { ...state, ...book, exists: false, spec: undefined, publicLinkHash: null };
    case 'JobUpdated':
      return {
        ...state,
        ...book,
        version: event.data.version,
        versionId: event.data.versionId,
        spec: event.data.spec,
      };
    case 'RunRequested':
      return {
        ...state,
        ...book,
        lastRunNumber: event.data.number,
        activeRuns: [...state.activeRuns, event.data.runId],
        ...(event.data.interval !== undefined || event.data.refresh !== undefined
          ? {
              runIntervals: {
                ...state.runIntervals,
                [event.data.runId]: {
                  start: event.data.interval?.start ?? null,
                  end: event.data.interval?.end ?? null,
                  refresh: event.data.refresh ?? false,
                },
              },
            }
          : {}),
        ...(event.data.refresh ? { refreshPending: false, lastIntervalEnd: null } : {}),
      };
    case 'ScheduledRunSkipped':
      return { ...state, ...book, lastRunNumber: event.data.number };
    case 'FireQueued':
      return { ...state, ...book };
    case 'RunEnded': {
      const run = state.runIntervals?.[event.data.runId];
      const rest = { ...state.runIntervals };
      delete rest[event.data.runId];
      const end = event.data.status === 'completed' && run ? run.end : null;
      const start = end !== null ? (run?.start ?? null) : null;
      return {
        ...state,
        ...(start !== null && end !== null && Date.parse(start) < Date.parse(end)
          ? { doneIntervals: coalesce([...(state.doneIntervals ?? []), [start, end]]) }
          : {}),
        activeRuns: state.activeRuns.filter((r) => r !== event.data.runId),
        ...(run ? { runIntervals: rest } : {}),
        ...(end !== null && (!state.lastIntervalEnd || Date.parse(end) > Date.parse(state.lastIntervalEnd))
          ? { lastIntervalEnd: end }
          : {}),
      };
    }
    case 'RefreshPending':
      // dlt's cascade clears the job's prev_completed_run / interval_end.
      return { ...state, refreshPending: true, lastIntervalEnd: null };
    case 'PublicLinkEnabled':
    case 'PublicLinkRotated':
      return { ...state, publicLinkHash: event.data.tokenHash };
    case 'PublicLinkRevoked':
      return { ...state, publicLinkHash: null };
    case 'WebhookEnabled':
    case 'WebhookRotated':
      return { ...state, webhookHash: event.data.tokenHash };
    case 'WebhookRevoked':
      return { ...state, webhookHash: null };
    case 'BackfillStarted':
    case 'BackfillSliceRequested':
    case 'BackfillSliceEnded':
    case 'BackfillEnded':
    case 'BackfillResumed':
      return { ...state, ...evolveBackfills(state, event) };
    default: {
      const never: never = event;
      return never;
    }
  }
}

function decide(command: JobCommand, state: JobState): JobEvent[] {
  switch (command.type) {
    case 'UpsertJob':
      return decideUpsertJob(command, state);
    case 'RequestRun':
      return decideRequestRun(command, state);
    case 'NoteRunEnded':
      return decideNoteRunEnded(command, state);
    case 'DeleteJob':
      return decideDeleteJob(command, state);
    case 'ChangePublicLink':
      return decideChangePublicLink(command, state);
    case 'ChangeWebhook':
      return decideChangeWebhook(command, state);
    case 'WakeJob':
      return decideWakeJob(command, state);
    case 'EnsureJob':
      return decideEnsureJob(command, state);
    case 'DeployManifestJob':
      return decideDeployManifestJob(command, state);
    case 'ArchiveJob':
      return decideArchiveJob(command, state);
    case 'MarkRefreshPending':
      return decideMarkRefreshPending(command, state);
    case 'StartBackfill':
      return decideStartBackfill(command, state);
    case 'CancelBackfill':
      return decideCancelBackfill(command, state);
    case 'ResumeBackfill':
      return decideResumeBackfill(command, state);
    default: {
      const never: never = command;
      throw new Error(`unknown job command ${JSON.stringify(never)}`);
    }
  }
}

/** Creates the job, or a new version of it when the upsert changes anything. */
export function decideUpsertJob(command: UpsertJob, state: JobState): JobEvent[] {
  const spec = specOf(command, state.spec);
  if (!state.exists) {
    return [
      {
        type: 'JobCreated',
        data: {
          jobId: command.jobId,
          versionId: command.versionId,
          version: state.version + 1,
          spec,
          createdBy: command.actor,
        },
      },
    ];
  }
  if (state.spec && spec.name !== state.spec.name)
    throw new DomainError(`job ${state.jobId} is named ${state.spec.name}, not ${spec.name}`);
  const changed = SPEC_FIELDS.filter((f) => spec[f] !== state.spec?.[f]);
  if (changed.length === 0) return [];
  return [
    {
      type: 'JobUpdated',
      data: {
        versionId: command.versionId,
        version: state.version + 1,
        spec,
        changed: [...changed],
        updatedBy: command.actor,
      },
    },
  ];
}

export function decideEnsureJob(command: EnsureJob, state: JobState): JobEvent[] {
  if (state.version > 0) return [];
  const { type: _t, actor, ...spec } = command;
  return decideUpsertJob({ ...spec, type: 'UpsertJob', actor }, state);
}

/** A manual / API run (refused with the reason when it cannot run), or a scheduled fire (decideFire). */
export function decideRequestRun(command: RequestRun, state: JobState): JobEvent[] {
  if (command.fireAt !== undefined) return decideFire(command, command.fireAt, state);
  const spec = state.spec;
  if (!state.exists || !spec) throw new NotFoundError('job not found');
  if (spec.manifest?.archived)
    throw new DomainError(`job ${spec.name} is archived (its manifest no longer lists it)`, 409, 'archived');
  if (command.trigger === 'webhook') {
    // The token the hook was called with must still be the job's (a revoke or rotate decided before wins).
    const hook = webhookTrigger(spec);
    if (!hook || !command.webhookHash || command.webhookHash !== (state.webhookHash ?? null))
      throw new NotFoundError('no such webhook');
  }
  const checked = checkRunnable(command, spec);
  if (typeof checked === 'string') throw new DomainError(checked);
  // A manifest trigger (chained, selected, deployment) honours concurrency and freshness as dlt's runtime does.
  if (spec.manifest && command.triggerSource !== undefined) {
    if (spec.overlapPolicy !== 'allow' && state.activeRuns.length > 0)
      throw new DomainError(
        `job ${spec.name} already has an active run (execute.concurrency 1)`,
        409,
        'skipped_concurrency_limit',
      );
    const stale = staleUpstreams(command.upstreams ?? [], new Date(command.now ?? Date.now()));
    if (stale.length > 0) throw new DomainError(stale.join('; '), 409, 'skipped_upstream_pending');
  }
  return [runRequested(command, state, spec, checked)];
}

/** Creates, updates or un-archives a job from its manifest definition; unchanged: nothing. */
export function decideDeployManifestJob(command: DeployManifestJob, state: JobState): JobEvent[] {
  const current = state.exists ? state.spec : undefined;
  const m = manifestJobSpec(command.definition, {
    engineVersion: command.engineVersion,
    definitionHash: command.definitionHash,
    deploymentModule: command.deploymentModule,
    now: new Date(command.now),
    currentSchedule: current?.schedule ?? null,
  });
  const min = command.minScheduleIntervalSeconds ?? 0;
  if (m.schedule !== null && m.schedule !== current?.schedule && min > 0) {
    const every = shortestInterval(m.schedule);
    if (every < min)
      throw new DomainError(
        `job ${m.name}: its time trigger fires every ${every} s; this server allows at most one fire every ${min} s`,
        422,
        'schedule_too_frequent',
      );
  }
  const spec: JobSpec = {
    name: m.name,
    description: m.description,
    entryPoint: m.entryPoint,
    kind: m.kind,
    profile: current?.profile ?? null,
    schedule: m.schedule,
    active: true,
    timeoutSeconds: m.timeoutSeconds,
    timezone: m.timezone,
    missedPolicy: current?.missedPolicy ?? 'run_once',
    overlapPolicy: m.overlapPolicy,
    manifest: m.manifest,
  };
  if (!current) {
    return [
      {
        type: 'JobCreated',
        data: {
          jobId: command.jobId,
          versionId: command.versionId,
          version: state.version + 1,
          spec,
          createdBy: command.actor,
        },
      },
    ];
  }
  if (current.name !== spec.name)
    throw new DomainError(`job ${state.jobId} is named ${current.name}, not ${spec.name}`);
  const changed: string[] = SPEC_FIELDS.filter((f) => spec[f] !== current[f]);
  if (manifestKey(current.manifest) !== manifestKey(spec.manifest)) changed.push('manifest');
  if (changed.length === 0) return [];
  // The same definition under a new manifest hash (another job changed): nothing to record.
  return [
    {
      type: 'JobUpdated',
      data: {
        versionId: command.versionId,
        version: state.version + 1,
        spec,
        changed,
        updatedBy: command.actor,
      },
    },
  ];
}

/** A manifest as compared between versions: without the whole manifest's hash. */
function manifestKey(m: JobManifest | null | undefined): string {
  if (!m) return '';
  const { definitionHash: _hash, ...rest } = m;
  return stableJson(rest);
}

function stableJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(stableJson).join(',')}]`;
  if (v !== null && typeof v === 'object')
    return `{${Object.keys(v)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${stableJson((v as Record<string, unknown>)[k])}`)
      .join(',')}}`;
  return JSON.stringify(v) ?? 'null';
}

export function decideArchiveJob(command: ArchiveJob, state: JobState): JobEvent[] {
  const spec = state.spec;
  if (!state.exists || !spec) throw new NotFoundError('job not found');
  if (!spec.manifest) throw new DomainError(`job ${spec.name} is not a manifest job`);
  if (spec.manifest.archived) return [];
  return [
    {
      type: 'JobUpdated',
      data: {
        versionId: command.versionId,
        version: state.version + 1,
        spec: { ...spec, active: false, manifest: { ...spec.manifest, archived: true } },
        changed: spec.active ? ['active', 'manifest'] : ['manifest'],
        updatedBy: command.actor,
      },
    },
  ];
}

export function decideMarkRefreshPending(command: MarkRefreshPending, state: JobState): JobEvent[] {
  const spec = state.spec;
  if (!state.exists || !spec?.manifest || spec.manifest.archived) return [];
  if (state.refreshPending) return [];
  return [{ type: 'RefreshPending', data: { cause: command.cause } }];
}

/** The two fields of a stored job definition a backfill is paced by. */
const paceFields = z.object({
  interval: z
    .object({ mode: z.enum(['sequential', 'parallel']).optional() })
    .passthrough()
    .optional(),
  execute: z
    .object({ concurrency: z.number().int().min(1).nullable().optional() })
    .passthrough()
    .optional(),
});

/** How a job's backfills are paced: `interval.mode` and `execute.concurrency` of its definition. */
export function backfillPace(m: JobManifest): { mode: 'sequential' | 'parallel'; concurrency: number } {
  const parsed = paceFields.safeParse(m.definition);
  const def = parsed.success ? parsed.data : {};
  if (def.interval?.mode !== 'parallel') return { mode: 'sequential', concurrency: 1 };
  const c = def.execute?.concurrency;
  return {
    mode: 'parallel',
    concurrency: c === null ? MAX_BACKFILL_CONCURRENCY : Math.min(c ?? 1, MAX_BACKFILL_CONCURRENCY),
  };
}

/**
 * Starts a backfill: the tick intervals of the job's time trigger in `[from, to)` (snapped as
 * dlt's `iter_intervals`), minus those a run of the job completed and those another backfill of
 * the job holds (unless `reprocess`), become its slices; the first ones are requested now.
 */
export function decideStartBackfill(command: StartBackfill, state: JobState): JobEvent[] {
  const spec = state.spec;
  if (!state.exists || !spec) throw new NotFoundError('job not found');
  if (!spec.manifest || spec.schedule === null)
    throw new DomainError(
      `job ${spec.name} has no schedule: or every: trigger to backfill by`,
      400,
      'no_interval',
    );
  if (spec.manifest.archived) throw new DomainError(`job ${spec.name} is archived`, 409, 'archived');
  if (state.backfills?.[command.backfillId]) return [];
  const ticks = backfillIntervals(spec.schedule, spec.timezone ?? 'UTC', command.from, command.to);
  if (ticks.length === 0)
    throw new DomainError(
      `no complete interval of ${spec.schedule} lies in [${command.from}, ${command.to})`,
    );
  // The job's declared interval bounds its runs (dlt clamps them): a backfill stays inside it.
  const declared = spec.manifest.interval;
  const intervals = declared
    ? ticks.filter(
        (iv) =>
          Date.parse(iv.start) >= Date.parse(declared.start) &&
          (declared.end === null || Date.parse(iv.end ?? iv.start) <= Date.parse(declared.end)),
      )
    : ticks;
  if (intervals.length === 0)
    throw new DomainError(
      `[${command.from}, ${command.to}) lies outside the interval of job ${spec.name} (from ${declared?.start}${declared?.end ? ` to ${declared.end}` : ''})`,
      400,
      'outside_interval',
    );
  if (ticks.length > MAX_BACKFILL_SLICES)
    throw new DomainError(
      `the range holds more than ${MAX_BACKFILL_SLICES} intervals of ${spec.schedule}; at most ${MAX_BACKFILL_SLICES} per backfill`,
      422,
      'too_many_slices',
    );
  const held: [string, string][] = Object.values(state.backfills ?? {}).flatMap((b: BackfillState) =>
    b.slices
      .filter((x) => x.status === 'pending' || x.status === 'requested')
      .map((x): [string, string] => [x.start, x.end]),
  );
  const busy = coalesce([...(state.doneIntervals ?? []), ...held]);
  const slices = command.reprocess ? intervals : intervals.filter((iv) => !covered(busy, iv));
  if (slices.length === 0)
    throw new DomainError(
      `every interval of [${command.from}, ${command.to}) is already done or held by another backfill of job ${spec.name}: ask for reprocess to run them again`,
      409,
      'nothing_to_backfill',
    );
  const pace = backfillPace(spec.manifest);
  const started: JobEvent = {
    type: 'BackfillStarted',
    data: {
      backfillId: command.backfillId,
      from: command.from,
      to: command.to,
      mode: pace.mode,
      concurrency: pace.concurrency,
      slices: slices.map((iv) => ({ start: iv.start, end: iv.end ?? iv.start })),
      skippedDone: intervals.length - slices.length,
      requestedBy: command.requestedBy,
    },
  };
  const checked = checkRunnable(
    {
      type: 'RequestRun',
      runId: command.backfillId,
      trigger: 'api',
      profile: null,
      deployment: command.deployment,
      configuration: command.configuration,
      requestedBy: command.requestedBy,
    },
    spec,
  );
  if (typeof checked === 'string') throw new DomainError(checked);
  return [
    started,
    ...requestSlices(
      command.backfillId,
      evolve(state, started),
      command.deployment,
      command.configuration,
      command.requestedBy,
    ),
  ];
}

/** Cancels a running or failed backfill: nothing more is requested; its runs in flight are named. */
export function decideCancelBackfill(command: CancelBackfill, state: JobState): JobEvent[] {
  const b = state.backfills?.[command.backfillId];
  if (!b) throw new NotFoundError(`backfill ${command.backfillId} is not running`);
  const inFlight = b.slices.flatMap((x) => (x.status === 'requested' && x.runId ? [x.runId] : []));
  return [
    backfillEnded(command.backfillId, 'cancelled', `cancelled by ${command.actor}`, inFlight, command.actor),
  ];
}

/** Resumes a failed backfill: failed / cancelled slices are pending again, then paced as usual. Running: nothing. */
export function decideResumeBackfill(command: ResumeBackfill, state: JobState): JobEvent[] {
  const b = state.backfills?.[command.backfillId];
  if (!b) throw new NotFoundError(`backfill ${command.backfillId} is not running or failed`);
  if (b.status === 'running') return [];
  const spec = state.spec;
  if (!spec || !state.exists) throw new NotFoundError('job not found');
  if (spec.manifest?.archived) throw new DomainError(`job ${spec.name} is archived`, 409, 'archived');
  const retried = b.slices.flatMap((x, i) => (x.status === 'failed' || x.status === 'cancelled' ? [i] : []));
  const resumed: JobEvent = {
    type: 'BackfillResumed',
    data: { backfillId: command.backfillId, retried, by: command.actor },
  };
  const events = [
    resumed,
    ...requestSlices(
      command.backfillId,
      evolve(state, resumed),
      command.deployment,
      command.configuration,
      command.actor,
    ),
  ];
  if (events.some((e) => e.type === 'BackfillEnded' && e.data.status === 'failed'))
    throw new DomainError(
      events.flatMap((e) => (e.type === 'BackfillEnded' ? [e.data.reason ?? 'cannot resume'] : []))[0] ??
        'cannot resume',
    );
  return events;
}

/** The tick intervals `[t_i, t_i+1)` of a schedule inside `[from, to)`. */
export function backfillIntervals(schedule: string, tz: string, from: string, to: string): RunInterval[] {
  const f = Date.parse(from);
  const t = Date.parse(to);
  if (!Number.isFinite(f) || !Number.isFinite(t) || t <= f)
    throw new DomainError(`backfill range [${from}, ${to}) is empty or not ISO 8601 times`);
  const out: RunInterval[] = [];
  let start = prevFire(schedule, tz, new Date(f));
  if (!start || start.getTime() < f) {
    const next = nextFireAfter(schedule, tz, f - 1);
    start = next;
  }
  while (start && start.getTime() < t && out.length <= MAX_BACKFILL_SLICES) {
    const end = nextFireAfter(schedule, tz, start.getTime());
    if (!end || end.getTime() > t) break;
    out.push({ start: start.toISOString(), end: end.toISOString() });
    start = end;
  }
  return out;
}

function nextFireAfter(schedule: string, tz: string, t: number): Date | null {
  return nextFireOf(schedule, tz, new Date(t));
}

/**
 * dlt's `check_all_upstream_run_fresh` (dlt/_workspace/deployment/interval.py, dlt 1.26.0): the
 * reasons the upstreams are not fresh at `now` (empty: all fresh).
 */
export function staleUpstreams(upstreams: readonly UpstreamState[], now: Date): string[] {
  const reasons: string[] = [];
  for (const u of upstreams) {
    if (!u.exists) {
      reasons.push(`upstream ${u.jobRef} does not exist`);
      continue;
    }
    if (u.kind === 'interactive') {
      reasons.push(`upstream ${u.jobRef} is an interactive job (cannot be fresh)`);
      continue;
    }
    if (!u.lastIntervalEnd) {
      reasons.push(`upstream ${u.jobRef} didn't process any intervals yet (refresh pending)`);
      continue;
    }
    const type = u.defaultTrigger?.split(':')[0];
    const end = Date.parse(u.lastIntervalEnd);
    if (type === 'schedule' && u.schedule) {
      const expected = prevFire(u.schedule, u.timezone, now);
      if (expected && end < expected.getTime())
        reasons.push(`upstream ${u.jobRef} missing run for ${expected.toISOString()}`);
    } else if (type === 'every' && u.schedule) {
      const rule = parseTimeRule(u.schedule);
      const period = rule?.kind === 'every' ? rule.periodMs : undefined;
      const elapsed = now.getTime() - end;
      if (period !== undefined && elapsed >= period)
        reasons.push(
          `upstream ${u.jobRef} has a missing run (last ${Math.round(elapsed / 1000)}s ago, period ${period / 1000}s)`,
        );
    }
    // event / manual: any completed interval is enough.
  }
  return reasons;
}

/**
 * dlt's `compute_run_interval` for a run of a manifest job: `schedule:` → [last successful
 * interval end, or the previous tick; the tick), `every:` → [last end, or now − period; now),
 * `once:` → [once, once), anything else → [now, now). Interval jobs start at `interval.start`
 * when no run completed (or a refresh reset it) and are clamped to `interval.start/end`.
 */
export function runInterval(
  spec: JobSpec,
  state: JobState,
  source: string,
  at: Date,
  fireAt: string | undefined,
  refresh: boolean,
): RunInterval {
  const m = spec.manifest;
  const type = source.split(':')[0];
  const iso = (d: Date) => d.toISOString();
  if (type === 'once') {
    const t = new Date(source.slice('once:'.length));
    return Number.isFinite(t.getTime()) ? { start: iso(t), end: iso(t) } : { start: iso(at), end: iso(at) };
  }
  if ((type !== 'schedule' && type !== 'every') || spec.schedule === null || !m)
    return { start: iso(at), end: iso(at) };
  const tz = spec.timezone ?? 'UTC';
  const rule = parseTimeRule(spec.schedule);
  const end = fireAt ? new Date(fireAt) : type === 'every' ? at : (prevFire(spec.schedule, tz, at) ?? at);
  const prevEnd = refresh ? null : (state.lastIntervalEnd ?? null);
  let start: Date;
  if (prevEnd) start = new Date(prevEnd);
  else if (m.interval) {
    const declared = new Date(m.interval.start);
    start = rule ? declared : (prevFire(spec.schedule, tz, declared) ?? declared);
  } else if (rule?.kind === 'every') start = new Date(end.getTime() - rule.periodMs);
  else start = prevFire(spec.schedule, tz, new Date(end.getTime() - 1)) ?? end;
  let e = end;
  if (m.interval) {
    const lo = Date.parse(m.interval.start);
    if (start.getTime() < lo) start = new Date(lo);
    if (m.interval.end && e.getTime() > Date.parse(m.interval.end)) e = new Date(m.interval.end);
  }
  if (start.getTime() > e.getTime()) start = e;
  return { start: iso(start), end: iso(e) };
}

export function decideDeleteJob(command: DeleteJob, state: JobState): JobEvent[] {
  if (!state.exists) throw new NotFoundError('job not found');
  return [{ type: 'JobDeleted', data: { deletedBy: command.actor } }];
}

/**
 * Public links exist for interactive jobs only. Enable on an enabled link and revoke without one
 * decide nothing (idempotent); rotate needs a link. The token's hash is all the event holds.
 */
export function decideChangePublicLink(command: ChangePublicLink, state: JobState): JobEvent[] {
  const spec = state.spec;
  if (!state.exists || !spec) throw new NotFoundError('job not found');
  const current = state.publicLinkHash;
  if (command.action === 'revoke')
    return current === null
      ? []
      : [{ type: 'PublicLinkRevoked', data: { previousHash: current, by: command.actor } }];
  if (spec.kind !== 'interactive')
    throw new DomainError(`job ${spec.name} is a batch job: only interactive jobs have public links`);
  if (!command.tokenHash) throw new DomainError('a public link needs the hash of its token');
  if (command.action === 'enable')
    return current !== null
      ? []
      : [{ type: 'PublicLinkEnabled', data: { tokenHash: command.tokenHash, by: command.actor } }];
  if (current === null)
    throw new DomainError(`job ${spec.name} has no public link to rotate: enable one first`);
  return [
    {
      type: 'PublicLinkRotated',
      data: { tokenHash: command.tokenHash, previousHash: current, by: command.actor },
    },
  ];
}

/** The job's `webhook:` trigger, if its manifest declares one. */
export const webhookTrigger = (spec: JobSpec | undefined): string | undefined =>
  spec?.manifest?.triggers.find((t) => t === 'webhook' || t.startsWith('webhook:'));

/**
 * Webhooks exist for manifest jobs that declare a `webhook:` trigger and are not archived. Enable
 * on an enabled webhook and revoke without one decide nothing; rotate needs one. Hash only.
 */
export function decideChangeWebhook(command: ChangeWebhook, state: JobState): JobEvent[] {
  const spec = state.spec;
  if (!state.exists || !spec) throw new NotFoundError('job not found');
  const current = state.webhookHash ?? null;
  if (command.action === 'revoke')
    return current === null
      ? []
      : [{ type: 'WebhookRevoked', data: { previousHash: current, by: command.actor } }];
  if (!webhookTrigger(spec))
    throw new DomainError(
      `job ${spec.name} declares no webhook: trigger in its manifest`,
      409,
      'no_webhook_trigger',
    );
  if (spec.manifest?.archived) throw new DomainError(`job ${spec.name} is archived`, 409, 'archived');
  if (!command.tokenHash) throw new DomainError('a webhook needs the hash of its token');
  if (command.action === 'enable')
    return current !== null
      ? []
      : [{ type: 'WebhookEnabled', data: { tokenHash: command.tokenHash, by: command.actor } }];
  if (current === null) throw new DomainError(`job ${spec.name} has no webhook to rotate: enable one first`);
  return [
    {
      type: 'WebhookRotated',
      data: { tokenHash: command.tokenHash, previousHash: current, by: command.actor },
    },
  ];
}

/** A wake run of an interactive job, unless one of its runs is active (then nothing). */
export function decideWakeJob(command: WakeJob, state: JobState): JobEvent[] {
  const spec = state.spec;
  if (!state.exists || !spec) throw new NotFoundError('job not found');
  if (spec.kind !== 'interactive')
    throw new DomainError(`job ${spec.name} is a batch job: only interactive jobs are woken`);
  if (state.activeRuns.length > 0) return [];
  const request: RequestRun = {
    type: 'RequestRun',
    runId: command.runId,
    trigger: 'wake',
    profile: null,
    deployment: command.deployment,
    configuration: command.configuration,
    requestedBy: 'wake',
  };
  const checked = checkRunnable(request, spec);
  if (typeof checked === 'string') throw new DomainError(checked);
  return [runRequested(request, state, spec, checked)];
}

/**
 * A run the job counts as active ended: it is not active any more; when it was the last one and a
 * fire is queued, that fire is requested now (or recorded as skipped). A run the job does not count
 * as active (ended before, skipped, not its own) decides nothing.
 */
export function decideNoteRunEnded(command: NoteRunEnded, state: JobState): JobEvent[] {
  if (!state.activeRuns.includes(command.runId)) return [];
  const refreshed = state.runIntervals?.[command.runId]?.refresh;
  const ended: JobEvent = {
    type: 'RunEnded',
    data: { runId: command.runId, status: command.status, ...(refreshed ? { refresh: true } : {}) },
  };
  // A slice of a backfill ended: the backfill goes on (next slices), or ends (done, failed).
  const events: JobEvent[] = [ended, ...paceBackfill(command, evolve(state, ended))];
  const after = events.reduce(evolve, state);
  const spec = state.spec;
  const queued = state.queuedFireAt;
  if (queued === null || after.activeRuns.length > 0 || !spec || !spec.active || spec.schedule === null)
    return events;
  // The last active run ended: the queued fire is requested now (or recorded as skipped).
  const request: RequestRun = {
    type: 'RequestRun',
    runId: command.nextRunId,
    trigger: 'schedule',
    profile: null,
    deployment: command.deployment,
    deployedFiles: command.deployedFiles,
    configuration: command.configuration,
    requestedBy: 'scheduler',
    fireAt: queued,
  };
  const checked = checkRunnable(request, spec);
  return [
    ...events,
    typeof checked === 'string'
      ? skipped(request, queued, after, spec, checked)
      : runRequested(request, after, spec, checked),
  ];
}

/** After a run's end was noted: the backfill slice it was (if any) ended; the backfill goes on or ends. */
function paceBackfill(command: NoteRunEnded, state: JobState): JobEvent[] {
  const found = sliceOfRun(state, command.runId);
  if (!found) return [];
  const { backfillId, slice } = found;
  const sliceEnded: JobEvent = {
    type: 'BackfillSliceEnded',
    data: { backfillId, slice, runId: command.runId, status: command.status },
  };
  const s = evolve(state, sliceEnded);
  const b = s.backfills?.[backfillId];
  if (!b || b.status !== 'running') return [sliceEnded];
  const failed = command.status !== 'completed';
  if (failed && b.mode === 'sequential')
    return [
      sliceEnded,
      backfillEnded(
        backfillId,
        'failed',
        `slice ${slice + 1} [${b.slices[slice]?.start}, ${b.slices[slice]?.end}) ended ${command.status}`,
      ),
    ];
  return [sliceEnded, ...requestSlices(backfillId, s, command.deployment, command.configuration, 'backfill')];
}

function backfillEnded(
  backfillId: string,
  status: 'completed' | 'failed' | 'cancelled',
  reason: string | null,
  inFlight: string[] = [],
  by = 'scheduler',
): JobEvent {
  return { type: 'BackfillEnded', data: { backfillId, status, reason, inFlight, by } };
}

/**
 * The next slices of a running backfill, as many as its concurrency leaves room for (oldest first),
 * each a RunRequested + BackfillSliceRequested; or its end when no slice is pending or in flight.
 * A slice that cannot be requested (job inactive, nothing deployed…) fails the backfill with why.
 */
function requestSlices(
  backfillId: string,
  state: JobState,
  deployment: VersionRef | null,
  configuration: (VersionRef & { profiles: readonly string[] }) | null,
  requestedBy: string,
): JobEvent[] {
  const b = state.backfills?.[backfillId];
  const spec = state.spec;
  if (!b || b.status !== 'running' || !spec) return [];
  const inFlight = b.slices.filter((x) => x.status === 'requested').length;
  const pending = b.slices.flatMap((x, i) => (x.status === 'pending' ? [i] : []));
  if (inFlight === 0 && pending.length === 0) {
    const bad = b.slices.filter((x) => x.status !== 'completed').length;
    return [
      bad === 0
        ? backfillEnded(backfillId, 'completed', null)
        : backfillEnded(backfillId, 'failed', `${bad} of ${b.slices.length} slice(s) did not complete`),
    ];
  }
  const events: JobEvent[] = [];
  let s = state;
  for (const i of pending.slice(0, Math.max(0, b.concurrency - inFlight))) {
    const slice = b.slices[i]!;
    const request: RequestRun = {
      type: 'RequestRun',
      runId: backfillRunId(backfillId, i, slice.attempts + 1),
      trigger: 'api',
      profile: null,
      deployment,
      configuration,
      requestedBy,
      triggerSource: `backfill:${b.from}/${b.to}`,
      interval: { start: slice.start, end: slice.end },
    };
    const why = spec.manifest?.archived ? `job ${spec.name} is archived` : undefined;
    const checked = why ?? checkRunnable(request, spec);
    if (typeof checked === 'string') {
      events.push(backfillEnded(backfillId, 'failed', `slice ${i + 1} cannot run: ${checked}`));
      return events;
    }
    const run = runRequested(request, s, spec, checked);
    const noted: JobEvent = {
      type: 'BackfillSliceRequested',
      data: { backfillId, slice: i, runId: request.runId },
    };
    events.push(run, noted);
    s = evolve(evolve(s, run), noted);
  }
  return events;
}

/** The profile a run uses, or why it cannot be requested (a message). */
function checkRunnable(
  command: RequestRun,
  spec: JobSpec,
): string | { profile: string; deployment: VersionRef | null } {
  if (!spec.active) return `job ${spec.name} is inactive: activate it (active: true) before requesting a run`;
  // A built-in entry point (runway:dashboard) is Runway's own app: no deployment, no file to check.
  const builtIn = spec.kind === 'interactive' && isBuiltInEntryPoint(spec.entryPoint);
  if (!command.deployment && !builtIn)
    return 'nothing is deployed in this workspace yet: deploy the workspace before running a job';
  if (
    command.deployment &&
    !builtIn &&
    ((command.entryPointChecked?.path === spec.entryPoint && command.entryPointChecked.deployed === false) ||
      (command.deployedFiles && !command.deployedFiles.has(spec.entryPoint.replace(/^(\.\/)+/, ''))))
  )
    return `the entry point ${spec.entryPoint} of job ${spec.name} is not a file of deployment ${command.deployment.version}`;
  let profile: string;
  try {
    profile =
      command.profile !== null ? checkProfile(command.profile) : (spec.profile ?? defaultProfile(spec.kind));
  } catch (err) {
    return (err as Error).message;
  }
  const known = new Set<string>([...BUILT_IN_PROFILES, ...(command.configuration?.profiles ?? [])]);
  if (!known.has(profile)) {
    return `profile ${profile} does not exist: it is neither built in (${BUILT_IN_PROFILES.join(', ')}) nor defined by configuration ${
      command.configuration ? `version ${command.configuration.version}` : '(none uploaded)'
    }`;
  }
  return { profile, deployment: command.deployment ?? null };
}

function runRequested(
  command: RequestRun,
  state: JobState,
  spec: JobSpec,
  ok: { profile: string; deployment: VersionRef | null },
): JobEvent {
  return {
    type: 'RunRequested',
    data: {
      runId: command.runId,
      number: state.lastRunNumber + 1,
      trigger: command.trigger,
      profile: ok.profile,
      jobVersion: state.version,
      jobVersionId: state.versionId,
      entryPoint: spec.entryPoint,
      kind: spec.kind,
      timeoutSeconds: spec.timeoutSeconds,
      deployment: ok.deployment,
      configuration: command.configuration
        ? { id: command.configuration.id, version: command.configuration.version }
        : null,
      requestedBy: command.requestedBy,
      ...(command.fireAt !== undefined ? { fireAt: command.fireAt } : {}),
      ...manifestRunFields(command, state, spec),
      ...(command.payload !== undefined ? { payload: command.payload } : {}),
    },
  };
}

/** What a run of a manifest job carries: its trigger string, interval and refresh flag. */
function manifestRunFields(
  command: RequestRun,
  state: JobState,
  spec: JobSpec,
): {
  triggerSource?: string;
  interval?: RunInterval;
  refresh?: boolean;
  interface?: 'gui' | 'rest_api' | 'mcp';
  launch?: RunLaunch;
} {
  const m = spec.manifest;
  if (!m) return {};
  const source =
    command.triggerSource ??
    (command.trigger === 'webhook' ? webhookTrigger(spec) : undefined) ??
    (command.fireAt !== undefined ? timeTrigger(m) : undefined) ??
    `manual:${m.jobRef}`;
  const refresh = (command.refresh ?? false) || (state.refreshPending ?? false);
  const at = new Date(command.now ?? command.fireAt ?? Date.now());
  return {
    triggerSource: source,
    interval: command.interval ?? runInterval(spec, state, source, at, command.fireAt, refresh),
    refresh,
    ...(spec.kind === 'interactive' && m.interface ? { interface: m.interface } : {}),
    launch: {
      jobRef: m.jobRef,
      launcher: m.launcher,
      module: m.module,
      function: m.function,
      timezone: spec.timezone,
      externalSchedulers: m.externalSchedulers,
      ...launchExtras(m.definition),
    },
  };
}

/** What a launch takes from the stored job definition as is: entry_point.config, require.dependency_groups. */
const launchExtrasSchema = z.object({
  entry_point: z.object({ config: z.record(z.string(), z.unknown()).optional() }).optional(),
  require: z.object({ dependency_groups: z.array(z.string().min(1).max(200)).max(50).optional() }).nullish(),
});

function launchExtras(definition: Record<string, unknown>): Pick<RunLaunch, 'config' | 'dependencyGroups'> {
  // Definitions stored before these fields were validated may not parse: then the launch has neither.
  const p = launchExtrasSchema.safeParse(definition);
  if (!p.success) return {};
  const config = p.data.entry_point?.config;
  const groups = p.data.require?.dependency_groups;
  return {
    ...(config !== undefined ? { config } : {}),
    ...(groups !== undefined && groups.length > 0 ? { dependencyGroups: groups } : {}),
  };
}

/** The job's `schedule:` / `every:` / `once:` trigger. */
function timeTrigger(m: JobManifest): string | undefined {
  return m.triggers.find((t) => t.startsWith('schedule:') || t.startsWith('every:') || t.startsWith('once:'));
}

function skipped(
  command: RequestRun,
  fireAt: string,
  state: JobState,
  spec: JobSpec,
  reason: string,
): JobEvent {
  return {
    type: 'ScheduledRunSkipped',
    data: {
      runId: command.runId,
      number: state.lastRunNumber + 1,
      trigger: command.trigger,
      profile: spec.profile ?? defaultProfile(spec.kind),
      jobVersion: state.version,
      jobVersionId: state.versionId,
      entryPoint: spec.entryPoint,
      kind: spec.kind,
      deployment: command.deployment,
      configuration: command.configuration
        ? { id: command.configuration.id, version: command.configuration.version }
        : null,
      requestedBy: command.requestedBy,
      fireAt,
      reason: reason.slice(0, 2000),
      ...(spec.manifest
        ? { triggerSource: command.triggerSource ?? timeTrigger(spec.manifest) ?? 'schedule' }
        : {}),
    },
  };
}

/**
 * A scheduled fire. Refused quietly (no event) when already handled (another replica, a retry),
 * when the job was deleted, deactivated or unscheduled meanwhile, or when the time is not a fire
 * time of the job's current schedule and zone (the scheduler planned it before a change). A fire that cannot make a run
 * (nothing deployed, …) is recorded as a skipped run with the reason. While a run of the job is
 * active, the overlap policy decides: skip (a skipped run), queue (one waits), allow.
 */
function decideFire(command: RequestRun, fireAt: string, state: JobState): JobEvent[] {
  const spec = state.spec;
  if (!state.exists || !spec || !spec.active || spec.schedule === null) return [];
  if (state.lastFireAt !== null && Date.parse(fireAt) <= Date.parse(state.lastFireAt)) return [];
  // Planned from a schedule or zone that changed since (a stale read of the scheduler): not a fire of this job any more.
  if (!isFireTime(spec.schedule, spec.timezone ?? 'UTC', new Date(fireAt))) return [];
  const checked = checkRunnable(command, spec);
  if (typeof checked === 'string') return [skipped(command, fireAt, state, spec, checked)];
  if (spec.manifest && command.upstreams) {
    const stale = staleUpstreams(command.upstreams, new Date(fireAt));
    if (stale.length > 0) return [skipped(command, fireAt, state, spec, `freshness: ${stale.join('; ')}`)];
  }
  const active = state.activeRuns[state.activeRuns.length - 1];
  const policy = spec.overlapPolicy ?? 'skip';
  if (active === undefined || policy === 'allow') return [runRequested(command, state, spec, checked)];
  if (policy === 'queue' && state.queuedFireAt === null)
    return [{ type: 'FireQueued', data: { fireAt, activeRunId: active } }];
  const why =
    policy === 'queue'
      ? `a run of job ${spec.name} is still active and the fire at ${state.queuedFireAt} is already queued (overlap policy queue)`
      : `a run of job ${spec.name} is still active (overlap policy skip)`;
  return [skipped(command, fireAt, state, spec, why)];
}

export const jobDecider: Decider<JobState, JobCommand, JobEvent> = { initialState, evolve, decide };
