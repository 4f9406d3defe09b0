/** Manifest jobs: deploy (create / update / un-archive), archive, the refresh cascade reaching a job. */

import type { JobManifest, JobSpec } from '#libs/contracts';
import { DomainError } from '#libs/eventstore';
import { shortestInterval } from '../../scheduler/cron.js';
import { SPEC_FIELDS } from '../job-spec.js';
import type { JobEvent } from '../job.events.js';
import type { JobState } from '../job.state.js';
import { manifestJobSpec, type JobDefinition } from '../manifest.js';
import { requireJob } from './guards.js';

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
  const spec = requireJob(state);
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
