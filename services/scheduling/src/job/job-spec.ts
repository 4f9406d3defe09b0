import { DomainError } from '#libs/eventstore';
import {
  isBuiltInEntryPoint,
  MAX_JOB_TIMEOUT_SECONDS,
  type JobKind,
  type JobSpec,
  type MissedPolicy,
  type OverlapPolicy,
} from '#libs/contracts';
import { shortestInterval, validateCron, validateTimezone } from '../scheduler/cron.js';

/** The checks of a job's spec (name, entry point, profile, schedule, zone, timeout): pure, for the job decider. */

// Characters that would break the name as a URL path segment in the dlt CLI (it inserts names verbatim).
// eslint-disable-next-line no-control-regex
const BAD_NAME = /[\u0000-\u001f\u007f?#\\]/;

function checkName(name: string): string {
  if (name.trim().length === 0) throw new DomainError('job name must not be empty');
  if (name.length > 500) throw new DomainError('job name must be at most 500 characters');
  if (BAD_NAME.test(name))
    throw new DomainError(
      `job name ${JSON.stringify(name)} must not contain control characters, "?", "#" or "\\"`,
    );
  if (name !== name.trim())
    throw new DomainError(`job name ${JSON.stringify(name)} must not start or end with white space`);
  if (name.startsWith('/')) throw new DomainError(`job name ${JSON.stringify(name)} must not start with "/"`);
  return name;
}

/** A path relative to the deployment root that cannot leave it. */
export function checkEntryPoint(entryPoint: string): string {
  const e = entryPoint;
  const bad =
    e.trim().length === 0 ||
    e.length > 1024 ||
    e !== e.trim() ||
    e.startsWith('/') ||
    e.includes('\\') ||
    // eslint-disable-next-line no-control-regex
    /[\u0000-\u001f]/.test(e) ||
    e.split('/').some((s) => s === '..') ||
    e.endsWith('/');
  if (bad)
    throw new DomainError(
      `entry point ${JSON.stringify(entryPoint)} must be a file path relative to the workspace root (no "..", not absolute)`,
    );
  return e;
}

/** A built-in entry point (runway:dashboard) runs only as an interactive job. */
export function checkBuiltIn(entryPoint: string, kind: JobKind): string {
  if (kind !== 'interactive' && isBuiltInEntryPoint(entryPoint))
    throw new DomainError(
      `entry point ${entryPoint} is built in and serves an app: only a job of kind interactive may use it`,
    );
  return entryPoint;
}

export function checkProfile(profile: string): string {
  if (!/^[A-Za-z0-9_-]{1,64}$/.test(profile))
    throw new DomainError(`profile ${JSON.stringify(profile)} must be 1 to 64 characters [A-Za-z0-9_-]`);
  return profile;
}

function checkSchedule(schedule: string, current: string | null, minIntervalSeconds: number): string {
  const s = schedule.trim();
  if (s.length === 0) throw new DomainError('schedule must not be empty: send null to remove the schedule');
  if (s.length > 200) throw new DomainError('schedule must be at most 200 characters');
  let normalized: string;
  try {
    normalized = validateCron(s);
  } catch (err) {
    throw new DomainError((err as Error).message);
  }
  // Only a new or changed schedule: one accepted under an earlier limit stays as it is.
  if (normalized !== current && minIntervalSeconds > 0) {
    const every = shortestInterval(normalized);
    if (every < minIntervalSeconds)
      throw new DomainError(
        `schedule ${JSON.stringify(normalized)} fires every ${every} s; this server allows at most one fire every ${minIntervalSeconds} s`,
        422,
        'schedule_too_frequent',
      );
  }
  return normalized;
}

function checkTimezone(tz: string): string {
  try {
    return validateTimezone(tz);
  } catch (err) {
    throw new DomainError((err as Error).message);
  }
}

function checkTimeout(t: number): number {
  if (!Number.isInteger(t) || t < 1 || t > MAX_JOB_TIMEOUT_SECONDS) {
    throw new DomainError(
      `timeout must be a whole number of seconds between 1 and ${MAX_JOB_TIMEOUT_SECONDS}`,
    );
  }
  return t;
}

/**
 * What an upsert says about a job's spec. Fields left `undefined` keep their current value (a new
 * job takes the default); `null` clears profile, schedule and timeout.
 */
export interface SpecChange {
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
  /**
   * The server's shortest schedule interval (RUNWAY_MIN_SCHEDULE_INTERVAL_SECONDS): a new or
   * changed schedule firing more often is refused (422). Unset: no limit.
   */
  minScheduleIntervalSeconds?: number;
}

export function specOf(c: SpecChange, current: JobSpec | undefined): JobSpec {
  if (c.description.length > 10_000) throw new DomainError('description must be at most 10000 characters');
  return {
    name: checkName(c.name),
    description: c.description,
    entryPoint: checkBuiltIn(checkEntryPoint(c.entryPoint), c.kind),
    kind: c.kind,
    profile:
      c.profile === undefined
        ? (current?.profile ?? null)
        : c.profile === null
          ? null
          : checkProfile(c.profile),
    schedule:
      c.schedule === undefined
        ? (current?.schedule ?? null)
        : c.schedule === null
          ? null
          : checkSchedule(c.schedule, current?.schedule ?? null, c.minScheduleIntervalSeconds ?? 0),
    active: c.active ?? current?.active ?? true,
    timeoutSeconds:
      c.timeoutSeconds === undefined
        ? (current?.timeoutSeconds ?? null)
        : c.timeoutSeconds === null
          ? null
          : checkTimeout(c.timeoutSeconds),
    timezone: c.timezone === undefined ? (current?.timezone ?? 'UTC') : checkTimezone(c.timezone),
    missedPolicy: c.missedPolicy ?? current?.missedPolicy ?? 'run_once',
    overlapPolicy: c.overlapPolicy ?? current?.overlapPolicy ?? 'skip',
    // A per-script upsert of a manifest job keeps what its manifest declared.
    ...(current?.manifest ? { manifest: current.manifest } : {}),
  };
}

export const SPEC_FIELDS = [
  'description',
  'entryPoint',
  'kind',
  'profile',
  'schedule',
  'active',
  'timeoutSeconds',
  'timezone',
  'missedPolicy',
  'overlapPolicy',
] as const;
