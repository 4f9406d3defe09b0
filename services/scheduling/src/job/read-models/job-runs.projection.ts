import type { StoredEvent } from '#libs/eventstore';
import { defineProjection } from '#libs/projections';
import type { JobEvent } from '#libs/contracts';
import type { JobRunRow, SchedulingTables } from '../../migrations/index.js';

/** The run events that end a run, and the status each one means. */
export const RUN_END_EVENTS: Readonly<Record<string, string>> = {
  RunCompleted: 'completed',
  RunFailed: 'failed',
  RunCancelled: 'cancelled',
  RunSkipped: 'skipped',
};

/**
 * `job_runs`: which job each run belongs to (from RunRequested on the job stream) and when it
 * ended (from the run's own terminal event, which does not name the job). One consumer sees both
 * in stream order, so a run's end never arrives before its request. The run-end notifier reads the
 * rows that ended and are not `noted` yet and tells their job (NoteRunEnded).
 */
export const jobRunsProjection = defineProjection<SchedulingTables>({
  name: 'job_runs',
  tables: ['job_runs'],
  canHandle: ['RunRequested', 'RunEnded', ...Object.keys(RUN_END_EVENTS)],
  async apply(db, events: readonly StoredEvent[]) {
    // Requests are inserted in one statement, before any other event of the batch is applied.
    let requested: JobRunRow[] = [];
    const flush = async () => {
      if (requested.length === 0) return;
      await db
        .insertInto('job_runs')
        .values(requested)
        .onConflict((oc) => oc.column('run_id').doNothing())
        .execute();
      requested = [];
    };
    for (const stored of events) {
      const at = new Date(stored.time);
      if (stored.type === 'RunRequested') {
        const e = { type: stored.type, data: stored.data } as Extract<JobEvent, { type: 'RunRequested' }>;
        requested.push({
          run_id: e.data.runId,
          job_id: stored.aggregate.id,
          workspace_id: stored.aggregate.workspaceId,
          requested_at: at,
          ended_status: null,
          ended_at: null,
          noted: false,
        });
        continue;
      }
      await flush();
      if (stored.type === 'RunEnded') {
        // The job recorded the end: nothing left to tell it.
        const e = { type: stored.type, data: stored.data } as Extract<JobEvent, { type: 'RunEnded' }>;
        await db.updateTable('job_runs').set({ noted: true }).where('run_id', '=', e.data.runId).execute();
      } else {
        const status = RUN_END_EVENTS[stored.type];
        if (!status) continue;
        await db
          .updateTable('job_runs')
          .set({ ended_status: status, ended_at: at })
          .where('run_id', '=', stored.aggregate.id)
          .where('ended_at', 'is', null)
          .execute();
      }
    }
    await flush();
  },
});
