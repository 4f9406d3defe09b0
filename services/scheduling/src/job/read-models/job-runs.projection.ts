import { RunRequested } from '#libs/contracts';
import { defineProjection, eventsOf } from '#libs/projections';
import type { JobRunRow, SchedulingTables } from '../../migrations/index.js';

/**
 * `job_runs`: which job each run belongs to (from RunRequested on the job's stream). The run's own
 * events do not name its job: the run-end reactor looks the job up here (job-runs.queries.ts).
 */
const handled = eventsOf(RunRequested);

export const jobRunsProjection = defineProjection<SchedulingTables>({
  name: 'job_runs',
  tables: ['job_runs'],
  canHandle: handled.types,
  async apply(db, events) {
    const rows: JobRunRow[] = handled.select(events).map((e) => ({
      run_id: e.data.runId,
      job_id: e.aggregate.id,
      workspace_id: e.aggregate.workspaceId,
      requested_at: new Date(e.time),
    }));
    for (let i = 0; i < rows.length; i += 1000)
      await db
        .insertInto('job_runs')
        .values(rows.slice(i, i + 1000))
        .onConflict((oc) => oc.column('run_id').doNothing())
        .execute();
  },
});
