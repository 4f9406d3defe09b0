/**
 * What every way of making a run shares (a request, a fire, a queued fire, a wake, a backfill
 * slice): the RequestRun command, whether the job can run, and the RunRequested /
 * ScheduledRunSkipped events.
 */

import { z } from 'zod';
import {
  isBuiltInEntryPoint,
  type JobKind,
  type JobManifest,
  type JobSpec,
  type RunInterval,
  type RunLaunch,
  type RunTrigger,
  type VersionRef,
} from '#libs/contracts';
import { checkProfile } from '../job-spec.js';
import type { JobEvent } from '../job.events.js';
import type { JobState } from '../job.state.js';
import { runInterval, type UpstreamState } from './freshness.js';
import { webhookTrigger } from './webhooks.js';

/** dlt's built-in profiles: always valid for a run, configured or not. */
export const BUILT_IN_PROFILES = ['dev', 'prod', 'access', 'tests'] as const;

/** The profile a run of this kind uses when neither the request nor the job names one. */
export function defaultProfile(kind: JobKind): string {
  return kind === 'batch' ? 'prod' : 'access';
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

/** The profile a run uses, or why it cannot be requested (a message). */
export function checkRunnable(
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

/** The run `checkRunnable` let through: its number, the job version, what it runs with. */
export function runRequested(
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

/** A fire that makes no run (cannot run, stale upstreams, overlap): the number is used, with why. */
export function skipped(
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
