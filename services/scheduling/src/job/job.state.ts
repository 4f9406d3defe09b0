/**
 * The job aggregate's state and how its events fold into it (`evolve`). The deciders of every
 * capability (`decide/`) fold their own events through `evolve` while deciding, so it lives here,
 * below them and below `job.decider.ts`.
 */

import type { JobSpec } from '#libs/contracts';
import { coalesce, evolveBackfills, type BackfillBook } from './backfill-state.js';
import { evolveFireBook } from './fire-book.js';
import type { JobEvent } from './job.events.js';

/** The job aggregate's state. */
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

export const initialState = (): JobState => ({
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

export function evolve(state: JobState, event: JobEvent): JobState {
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
