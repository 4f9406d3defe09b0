import { z } from 'zod';
import { integrationRegistry, jobEvents as jobIntegrationEvents } from '#libs/contracts';
import { defineEvent, type EventOf, type EventRegistry } from '#libs/eventstore';

/**
 * The job aggregate's private events: recorded on the job's stream for the job's own decisions
 * (overlap), read by no other service. Its integration events (JobCreated, JobUpdated,
 * JobDeleted, RunRequested, ScheduledRunSkipped) live in libs/contracts.
 */

/** Overlap policy `queue`: a fire that waits until the job's active runs ended (at most one waits). */
export const FireQueued = defineEvent(
  'FireQueued',
  z.object({ fireAt: z.string().datetime(), activeRunId: z.string().uuid() }),
);

/** A run of the job reached a terminal status (noted from the run's own events, so overlap can be decided). */
export const RunEnded = defineEvent(
  'RunEnded',
  z.object({
    runId: z.string().uuid(),
    status: z.string().min(1).max(40),
    /** Manifest jobs: the run had refresh (its end may start the refresh cascade). */
    refresh: z.boolean().optional(),
  }),
);

/**
 * Manifest jobs: a refresh reached this job along freshness edges (dlt's refresh cascade). Its
 * last interval end is forgotten; its next run carries `refresh: true` and restarts its interval.
 */
export const RefreshPending = defineEvent('RefreshPending', z.object({ cause: z.string().min(1).max(500) }));

/** A backfill's mode: one slice at a time (dlt's default), or up to `concurrency` slices in flight. */
export const backfillModeSchema = z.enum(['sequential', 'parallel']);
export type BackfillMode = z.infer<typeof backfillModeSchema>;
const sliceSchema = z.object({ start: z.string().datetime(), end: z.string().datetime() });
const backfillId = z.string().uuid();

/**
 * A backfill of an interval job started (docs/manifest.md "Backfills"): its range, its slices (the
 * tick intervals not done yet, oldest first) and how many may be in flight at once. The slices it
 * requests now follow as RunRequested + BackfillSliceRequested in the same commit.
 */
export const BackfillStarted = defineEvent(
  'BackfillStarted',
  z.object({
    backfillId,
    from: z.string().datetime(),
    to: z.string().datetime(),
    mode: backfillModeSchema,
    /** Slices in flight at most (sequential: 1). */
    concurrency: z.number().int().min(1),
    slices: z.array(sliceSchema).min(1),
    /** Intervals of the range left out because a run of the job already completed them. */
    skippedDone: z.number().int().min(0),
    requestedBy: z.string().min(1),
  }),
);

/** A slice of a backfill was requested as run `runId` (after its RunRequested, same commit). */
export const BackfillSliceRequested = defineEvent(
  'BackfillSliceRequested',
  z.object({ backfillId, slice: z.number().int().min(0), runId: z.string().uuid() }),
);

/** The run of a slice ended (noted with the run's end on the job). */
export const BackfillSliceEnded = defineEvent(
  'BackfillSliceEnded',
  z.object({
    backfillId,
    slice: z.number().int().min(0),
    runId: z.string().uuid(),
    status: z.string().min(1).max(40),
  }),
);

/**
 * A backfill ended: every slice completed, a slice failed (sequential: the rest is not requested;
 * parallel: after the others ended), a slice could not be requested, or it was cancelled.
 */
export const BackfillEnded = defineEvent(
  'BackfillEnded',
  z.object({
    backfillId,
    status: z.enum(['completed', 'failed', 'cancelled']),
    reason: z.string().max(2000).nullable(),
    /** Cancelled: the runs still in flight (the gateway cancels them). */
    inFlight: z.array(z.string().uuid()),
    by: z.string().min(1),
  }),
);

/** A failed backfill goes on: its failed slices are pending again (a new run each), the rest as before. */
export const BackfillResumed = defineEvent(
  'BackfillResumed',
  z.object({ backfillId, retried: z.array(z.number().int().min(0)), by: z.string().min(1) }),
);

export const jobPrivateEvents = [
  FireQueued,
  RunEnded,
  RefreshPending,
  BackfillStarted,
  BackfillSliceRequested,
  BackfillSliceEnded,
  BackfillEnded,
  BackfillResumed,
] as const;

/** Every event on a job's stream. */
export const jobStreamEvents = [...jobIntegrationEvents, ...jobPrivateEvents] as const;
export type JobEvent = EventOf<typeof jobStreamEvents>;

/** Registers the job's private events (on top of the integration ones). */
export function registerJobEvents(registry: EventRegistry): EventRegistry {
  return registry.register(...jobPrivateEvents);
}

/** The registry of the scheduling service: the integration events and the job's private ones. */
export function schedulingRegistry(): EventRegistry {
  return integrationRegistry(...jobPrivateEvents);
}
