import type { RunInterval } from '#libs/contracts';
import type { BackfillMode, JobEvent } from './job.events.js';
import { uuidv5 } from './job-id.js';

/** At most this many slices per backfill (a bigger range is refused, 422). */
export const MAX_BACKFILL_SLICES = 500;
/** `execute.concurrency: null` (no limit) in a parallel backfill: at most this many slices in flight. */
export const MAX_BACKFILL_CONCURRENCY = 16;

export type SliceStatus = 'pending' | 'requested' | 'completed' | 'failed' | 'cancelled';

export interface BackfillSlice {
  start: string;
  end: string;
  status: SliceStatus;
  /** The run of its latest attempt (null: never requested). */
  runId: string | null;
  /** Attempts requested so far (a resume retries a failed slice with a new run). */
  attempts: number;
}

/** A backfill the job still paces: running, or failed (resumable). Completed and cancelled ones leave the state. */
export interface BackfillState {
  from: string;
  to: string;
  mode: BackfillMode;
  concurrency: number;
  status: 'running' | 'failed';
  slices: BackfillSlice[];
}

/** The job's backfill bookkeeping (part of JobState). */
export interface BackfillBook {
  backfills?: Record<string, BackfillState>;
  /** Intervals completed by runs of the job, sorted and coalesced (dlt's `sort_and_coalesce`). */
  doneIntervals?: [string, string][];
}

/** The run id of attempt `attempt` of slice `slice`: derived, so a decision retried makes the same run. */
export function backfillRunId(backfillId: string, slice: number, attempt: number): string {
  return uuidv5(`backfill:${slice}:${attempt}`, backfillId);
}

/** dlt's `sort_and_coalesce` (`_interval_store_freshness.py`): sorted, adjacent/overlapping merged. */
export function coalesce(intervals: readonly [string, string][]): [string, string][] {
  const sorted = [...intervals].sort((a, b) => Date.parse(a[0]) - Date.parse(b[0]));
  const out: [string, string][] = [];
  for (const iv of sorted) {
    const last = out[out.length - 1];
    if (last && Date.parse(iv[0]) <= Date.parse(last[1])) {
      if (Date.parse(iv[1]) > Date.parse(last[1])) last[1] = iv[1];
    } else out.push([iv[0], iv[1]]);
  }
  return out;
}

/** Whether `[start, end)` lies inside one of the coalesced intervals. */
export function covered(done: readonly [string, string][], iv: RunInterval): boolean {
  const s = Date.parse(iv.start);
  const e = Date.parse(iv.end ?? iv.start);
  return done.some(([a, b]) => Date.parse(a) <= s && e <= Date.parse(b));
}

/** The backfill and slice a run of the job belongs to, if any. */
export function sliceOfRun(
  book: BackfillBook,
  runId: string,
): { backfillId: string; backfill: BackfillState; slice: number } | undefined {
  for (const [backfillId, backfill] of Object.entries(book.backfills ?? {})) {
    const slice = backfill.slices.findIndex((s) => s.runId === runId);
    if (slice >= 0) return { backfillId, backfill, slice };
  }
  return undefined;
}

const withSlice = (b: BackfillState, i: number, change: Partial<BackfillSlice>): BackfillState => ({
  ...b,
  slices: b.slices.map((s, j) => (j === i ? { ...s, ...change } : s)),
});

/** The backfill part of the job's evolve. */
export function evolveBackfills(book: BackfillBook, event: JobEvent): BackfillBook {
  const all = book.backfills ?? {};
  const put = (id: string, b: BackfillState | undefined): BackfillBook => {
    const next = { ...all };
    if (b) next[id] = b;
    else delete next[id];
    return { backfills: next };
  };
  switch (event.type) {
    case 'BackfillStarted':
      return put(event.data.backfillId, {
        from: event.data.from,
        to: event.data.to,
        mode: event.data.mode,
        concurrency: event.data.concurrency,
        status: 'running',
        slices: event.data.slices.map((s) => ({ ...s, status: 'pending', runId: null, attempts: 0 })),
      });
    case 'BackfillSliceRequested': {
      const b = all[event.data.backfillId];
      if (!b) return {};
      const attempts = (b.slices[event.data.slice]?.attempts ?? 0) + 1;
      return put(
        event.data.backfillId,
        withSlice(b, event.data.slice, { status: 'requested', runId: event.data.runId, attempts }),
      );
    }
    case 'BackfillSliceEnded': {
      const b = all[event.data.backfillId];
      if (!b) return {};
      const status: SliceStatus =
        event.data.status === 'completed'
          ? 'completed'
          : event.data.status === 'cancelled'
            ? 'cancelled'
            : 'failed';
      return put(event.data.backfillId, withSlice(b, event.data.slice, { status }));
    }
    case 'BackfillEnded': {
      const b = all[event.data.backfillId];
      if (!b) return {};
      // A failed backfill stays (resumable); completed and cancelled ones are done with.
      return put(
        event.data.backfillId,
        event.data.status === 'failed' ? { ...b, status: 'failed' } : undefined,
      );
    }
    case 'BackfillResumed': {
      const b = all[event.data.backfillId];
      if (!b) return {};
      const retried = new Set(event.data.retried);
      return put(event.data.backfillId, {
        ...b,
        status: 'running',
        slices: b.slices.map((s, i) => (retried.has(i) ? { ...s, status: 'pending' } : s)),
      });
    }
    default:
      return {};
  }
}
