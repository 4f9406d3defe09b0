/** Backfills (docs/manifest.md "Backfills"): start, cancel, resume, and pacing their slices as runs end. */

import { z } from 'zod';
import type { JobManifest, RunInterval, VersionRef } from '#libs/contracts';
import { DomainError, NotFoundError } from '#libs/eventstore';
import { nextFire as nextFireOf, prevFire } from '../../scheduler/cron.js';
import {
  backfillRunId,
  coalesce,
  covered,
  MAX_BACKFILL_CONCURRENCY,
  MAX_BACKFILL_SLICES,
  sliceOfRun,
  type BackfillState,
} from '../backfill-state.js';
import type { JobEvent } from '../job.events.js';
import { evolve, type JobState } from '../job.state.js';
import { requireJob, refuseArchived } from './guards.js';
import { checkRunnable, runRequested, type RequestRun } from './run-request.js';

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
  const spec = requireJob(state);
  if (!spec.manifest || spec.schedule === null)
    throw new DomainError(
      `job ${spec.name} has no schedule: or every: trigger to backfill by`,
      400,
      'no_interval',
    );
  refuseArchived(spec);
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
  const spec = requireJob(state);
  refuseArchived(spec);
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

/** After a run's end was noted: the backfill slice it was (if any) ended; the backfill goes on or ends. */
export function paceBackfill(
  command: {
    runId: string;
    status: string;
    deployment: VersionRef | null;
    configuration: (VersionRef & { profiles: readonly string[] }) | null;
  },
  state: JobState,
): JobEvent[] {
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
