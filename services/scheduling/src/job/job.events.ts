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
  z.object({ runId: z.string().uuid(), status: z.string().min(1).max(40) }),
);

/**
 * Manifest jobs: a refresh reached this job along freshness edges (dlt's refresh cascade). Its
 * last interval end is forgotten; its next run carries `refresh: true` and restarts its interval.
 */
export const RefreshPending = defineEvent('RefreshPending', z.object({ cause: z.string().min(1).max(500) }));

export const jobPrivateEvents = [FireQueued, RunEnded, RefreshPending] as const;

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
