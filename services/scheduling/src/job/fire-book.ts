import type { JobEvent } from './job.events.js';

/**
 * The fire bookkeeping of a job: the last fire time handled (requested, skipped or queued) and the
 * fire waiting for the active runs to end (overlap policy `queue`). One rule, folded by the job
 * decider (its state) and by the `jobs` projection (its `last_fire_at` / `queued_fire_at` columns).
 */
export interface FireBook {
  /** ISO time, null: none. */
  lastFireAt: string | null;
  /** ISO time, null: none. */
  queuedFireAt: string | null;
}

const ms = (t: string): number => Date.parse(t);

/** The later of two fire times (either may be missing). */
function laterFire(a: string | null, b: string | null | undefined): string | null {
  if (!b) return a;
  if (!a) return b;
  return ms(b) > ms(a) ? b : a;
}

/** A fire that consumed the queued one clears it. */
function consume(queued: string | null, fireAt: string | null | undefined): string | null {
  return queued !== null && fireAt && ms(fireAt) === ms(queued) ? null : queued;
}

/** The book after one event of the job's stream (events that do not touch it leave it as it is). */
export function evolveFireBook(book: FireBook, event: JobEvent): FireBook {
  switch (event.type) {
    case 'RunRequested':
    case 'ScheduledRunSkipped':
      return {
        lastFireAt: laterFire(book.lastFireAt, event.data.fireAt),
        queuedFireAt: consume(book.queuedFireAt, event.data.fireAt),
      };
    case 'FireQueued':
      return { lastFireAt: laterFire(book.lastFireAt, event.data.fireAt), queuedFireAt: event.data.fireAt };
    case 'JobUpdated': {
      // A queued fire is dropped when the job stops firing.
      const fires = event.data.spec.active && event.data.spec.schedule !== null;
      return fires ? book : { ...book, queuedFireAt: null };
    }
    case 'JobDeleted':
      // The last fire time stays: a job created again continues it (no fire time twice).
      return { ...book, queuedFireAt: null };
    case 'JobCreated':
    case 'RunEnded':
    case 'PublicLinkEnabled':
    case 'PublicLinkRotated':
    case 'PublicLinkRevoked':
    case 'WebhookEnabled':
    case 'WebhookRotated':
    case 'WebhookRevoked':
    case 'RefreshPending':
    case 'BackfillStarted':
    case 'BackfillSliceRequested':
    case 'BackfillSliceEnded':
    case 'BackfillEnded':
    case 'BackfillResumed':
      return book;
  }
}
