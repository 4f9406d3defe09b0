import { DomainError, NotFoundError, type Decider } from '#libs/eventstore';
import { isFireTime } from '../scheduler/cron.js';
import {
  isBuiltInEntryPoint,
  type MissedPolicy,
  type OverlapPolicy,
  type JobKind,
  type JobSpec,
  type RunTrigger,
  type VersionRef,
} from '#libs/contracts';
import { evolveFireBook } from './fire-book.js';
import { checkProfile, SPEC_FIELDS, specOf } from './job-spec.js';
import type { JobEvent } from './job.events.js';

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
  UpsertJob | RequestRun | NoteRunEnded | DeleteJob | EnsureJob | ChangePublicLink | WakeJob;

export interface JobState {
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
      };
    case 'ScheduledRunSkipped':
      return { ...state, ...book, lastRunNumber: event.data.number };
    case 'FireQueued':
      return { ...state, ...book };
    case 'RunEnded':
      return { ...state, activeRuns: state.activeRuns.filter((r) => r !== event.data.runId) };
    case 'PublicLinkEnabled':
    case 'PublicLinkRotated':
      return { ...state, publicLinkHash: event.data.tokenHash };
    case 'PublicLinkRevoked':
      return { ...state, publicLinkHash: null };
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
    case 'WakeJob':
      return decideWakeJob(command, state);
    case 'EnsureJob':
      return decideEnsureJob(command, state);
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
  const checked = checkRunnable(command, spec);
  if (typeof checked === 'string') throw new DomainError(checked);
  return [runRequested(command, state, spec, checked)];
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
  const ended: JobEvent = { type: 'RunEnded', data: { runId: command.runId, status: command.status } };
  const spec = state.spec;
  const queued = state.queuedFireAt;
  if (queued === null || state.activeRuns.length > 1 || !spec || !spec.active || spec.schedule === null)
    return [ended];
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
    ended,
    typeof checked === 'string'
      ? skipped(request, queued, state, spec, checked)
      : runRequested(request, state, spec, checked),
  ];
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
    },
  };
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
