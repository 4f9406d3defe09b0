import type { QueryCreator } from 'kysely';
import { defineProjection, eventsOf } from '#libs/projections';
import type { BackfillSliceRow, SchedulingTables } from '../../migrations/index.js';
import {
  BackfillEnded,
  BackfillResumed,
  BackfillSliceEnded,
  BackfillSliceRequested,
  BackfillStarted,
} from '../job.events.js';
import { slicesOf } from './backfills.queries.js';

const handled = eventsOf(
  BackfillStarted,
  BackfillSliceRequested,
  BackfillSliceEnded,
  BackfillEnded,
  BackfillResumed,
);

/** The slices of a backfill row, changed by `change`, written back with the status / times given. */
async function update(
  db: QueryCreator<SchedulingTables>,
  id: string,
  at: Date,
  change: (slices: BackfillSliceRow[]) => BackfillSliceRow[],
  set: {
    status?: 'running' | 'completed' | 'failed' | 'cancelled';
    reason?: string | null;
    ended_at?: Date | null;
  } = {},
): Promise<void> {
  const row = await db.selectFrom('backfills').select('slices').where('id', '=', id).executeTakeFirst();
  if (!row) return;
  await db
    .updateTable('backfills')
    .set({ slices: JSON.stringify(change(slicesOf(row.slices))), updated_at: at, ...set })
    .where('id', '=', id)
    .execute();
}

/** Folds the job's backfill events into `backfills` (one row per backfill, its slices as JSON). */
export const backfillsProjection = defineProjection<SchedulingTables>({
  name: 'backfills',
  tables: ['backfills'],
  canHandle: handled.types,
  async apply(db, events) {
    for (const e of handled.select(events)) {
      const at = new Date(e.time);
      const id = e.data.backfillId;
      switch (e.type) {
        case 'BackfillStarted':
          await db
            .insertInto('backfills')
            .values({
              id,
              workspace_id: e.aggregate.workspaceId,
              job_id: e.aggregate.id,
              from_at: new Date(e.data.from),
              to_at: new Date(e.data.to),
              mode: e.data.mode,
              concurrency: e.data.concurrency,
              status: 'running',
              reason: null,
              slices: JSON.stringify(
                e.data.slices.map((x): BackfillSliceRow => ({
                  ...x,
                  status: 'pending',
                  run_id: null,
                  attempts: 0,
                })),
              ),
              skipped_done: e.data.skippedDone,
              requested_by: e.data.requestedBy,
              created_at: at,
              updated_at: at,
              ended_at: null,
            })
            .onConflict((oc) => oc.column('id').doNothing())
            .execute();
          break;
        case 'BackfillSliceRequested':
          await update(db, id, at, (slices) =>
            slices.map((x, i) =>
              i === e.data.slice
                ? { ...x, status: 'requested', run_id: e.data.runId, attempts: x.attempts + 1 }
                : x,
            ),
          );
          break;
        case 'BackfillSliceEnded': {
          const st = e.data.status;
          const status = st === 'completed' ? 'completed' : st === 'cancelled' ? 'cancelled' : 'failed';
          await update(db, id, at, (slices) =>
            slices.map((x, i) => (i === e.data.slice && x.run_id === e.data.runId ? { ...x, status } : x)),
          );
          break;
        }
        case 'BackfillEnded':
          // Cancelled: what was pending or in flight is cancelled (the gateway cancels the runs).
          await update(
            db,
            id,
            at,
            (slices) =>
              e.data.status === 'cancelled'
                ? slices.map((x) =>
                    x.status === 'pending' || x.status === 'requested' ? { ...x, status: 'cancelled' } : x,
                  )
                : slices,
            { status: e.data.status, reason: e.data.reason, ended_at: at },
          );
          break;
        case 'BackfillResumed': {
          const retried = new Set(e.data.retried);
          await update(
            db,
            id,
            at,
            (slices) => slices.map((x, i) => (retried.has(i) ? { ...x, status: 'pending' } : x)),
            { status: 'running', reason: null, ended_at: null },
          );
          break;
        }
      }
    }
  },
});
