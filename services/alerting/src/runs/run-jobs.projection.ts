import { JobCreated, JobUpdated, RunRequested, ScheduledRunSkipped } from '#libs/contracts';
import { defineProjection, eventsOf } from '#libs/projections';
import type { AlertingTables } from '../migrations/index.js';

const handled = eventsOf(JobCreated, JobUpdated, RunRequested, ScheduledRunSkipped);

/**
 * `alert_runs` / `alert_jobs`: which job each run belongs to, and each job's name (from the job's
 * integration events). A run's own end events do not name its job: the raise reactor looks it up here.
 */
export const alertRunsProjection = defineProjection<AlertingTables>({
  name: 'alert_runs',
  tables: ['alert_runs', 'alert_jobs'],
  canHandle: handled.types,
  async apply(db, events) {
    for (const e of handled.select(events)) {
      const workspaceId = e.aggregate.workspaceId;
      const jobId = e.aggregate.id;
      switch (e.type) {
        case 'JobCreated':
        case 'JobUpdated':
          await db
            .insertInto('alert_jobs')
            .values({ job_id: jobId, workspace_id: workspaceId, name: e.data.spec.name })
            .onConflict((oc) => oc.column('job_id').doUpdateSet({ name: e.data.spec.name }))
            .execute();
          break;
        case 'RunRequested':
        case 'ScheduledRunSkipped':
          await db
            .insertInto('alert_runs')
            .values({
              run_id: e.data.runId,
              workspace_id: workspaceId,
              job_id: jobId,
              run_number: e.data.number,
            })
            .onConflict((oc) => oc.column('run_id').doNothing())
            .execute();
          break;
        default: {
          const never: never = e;
          throw new Error(`unhandled ${JSON.stringify(never)}`);
        }
      }
    }
  },
});
