import { defineProjection } from '#libs/projections';
import type { JobEvent, JobSpec } from '#libs/contracts';
import type { SchedulingTables } from '../../migrations/index.js';

function columns(spec: JobSpec) {
  return {
    name: spec.name,
    description: spec.description,
    entry_point: spec.entryPoint,
    kind: spec.kind,
    profile: spec.profile,
    schedule: spec.schedule,
    active: spec.active,
    timeout_seconds: spec.timeoutSeconds,
  };
}

/** Folds job events into `jobs` (the latest version of each job) and `job_versions` (every version). */
export const jobsProjection = defineProjection<SchedulingTables>({
  name: 'jobs',
  tables: ['jobs', 'job_versions'],
  canHandle: ['JobCreated', 'JobUpdated'],
  async apply(db, events) {
    for (const stored of events) {
      const e = { type: stored.type, data: stored.data } as JobEvent;
      const jobId = stored.aggregate.id;
      const workspaceId = stored.aggregate.workspaceId;
      const at = new Date(stored.time);
      switch (e.type) {
        case 'JobCreated': {
          const row = { ...columns(e.data.spec), version: 1, version_id: e.data.versionId };
          await db
            .insertInto('jobs')
            .values({
              id: jobId,
              workspace_id: workspaceId,
              ...row,
              created_by: e.data.createdBy,
              created_at: at,
              updated_at: at,
            })
            .onConflict((oc) => oc.column('id').doNothing())
            .execute();
          await db
            .insertInto('job_versions')
            .values({
              id: e.data.versionId,
              job_id: jobId,
              workspace_id: workspaceId,
              version: 1,
              ...columns(e.data.spec),
              changed: [],
              created_by: e.data.createdBy,
              created_at: at,
            })
            .onConflict((oc) => oc.column('id').doNothing())
            .execute();
          break;
        }
        case 'JobUpdated':
          await db
            .updateTable('jobs')
            .set({
              ...columns(e.data.spec),
              version: e.data.version,
              version_id: e.data.versionId,
              updated_at: at,
            })
            .where('id', '=', jobId)
            .execute();
          await db
            .insertInto('job_versions')
            .values({
              id: e.data.versionId,
              job_id: jobId,
              workspace_id: workspaceId,
              version: e.data.version,
              ...columns(e.data.spec),
              changed: e.data.changed,
              created_by: e.data.updatedBy,
              created_at: at,
            })
            .onConflict((oc) => oc.column('id').doNothing())
            .execute();
          break;
        case 'RunRequested':
          break;
      }
    }
  },
});
