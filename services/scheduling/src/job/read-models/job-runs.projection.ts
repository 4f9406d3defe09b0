import { RunRequested } from '#libs/contracts';
import { defineProjection } from '#libs/projections';
import type { JobRunRow, SchedulingTables } from '../../migrations/index.js';

/**
 * `job_runs`: which job each run belongs to (from RunRequested on the job's stream). The run's own
 * events do not name its job: the run-end reactor looks the job up here (job-runs.queries.ts).
 */
export const jobRunsProjection = defineProjection<SchedulingTables>({
  name: 'job_runs',
  tables: ['job_runs'],
  canHandle: ['RunRequested'],
  async apply(db, events) {
    const rows: JobRunRow[] = events.flatMap((stored) =>
      stored.type === 'RunRequested'
        ? [
            {
              run_id: RunRequested.schema.parse(stored.data).runId,
              job_id: stored.aggregate.id,
              workspace_id: stored.aggregate.workspaceId,
              requested_at: new Date(stored.time),
            },
          ]
        : [],
    );
    for (let i = 0; i < rows.length; i += 1000)
      await db
        .insertInto('job_runs')
        .values(rows.slice(i, i + 1000))
        .onConflict((oc) => oc.column('run_id').doNothing())
        .execute();
  },
});
