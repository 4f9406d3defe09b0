/** Runs: manual / API / trigger requests, scheduled fires with their overlap policy, run ends. */

import type { VersionRef } from '#libs/contracts';
import { DomainError, NotFoundError } from '#libs/eventstore';
import { isFireTime } from '../../scheduler/cron.js';
import type { JobEvent } from '../job.events.js';
import { evolve, type JobState } from '../job.state.js';
import { requireJob, refuseArchived } from './guards.js';
import { paceBackfill } from './backfills.js';
import { staleUpstreams } from './freshness.js';
import { checkRunnable, runRequested, skipped, type RequestRun } from './run-request.js';
import { webhookTrigger } from './webhooks.js';

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

/** A manual / API run (refused with the reason when it cannot run), or a scheduled fire (decideFire). */
export function decideRequestRun(command: RequestRun, state: JobState): JobEvent[] {
  if (command.fireAt !== undefined) return decideFire(command, command.fireAt, state);
  const spec = requireJob(state);
  refuseArchived(spec, 'its manifest no longer lists it');
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
