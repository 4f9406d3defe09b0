import { defineProjection } from '#libs/projections';
import type { JobEvent, JobSpec } from '#libs/contracts';
import type { SchedulingTables } from '../../migrations/index.js';
import { nextFire } from '../../scheduler/cron.js';

/** The next fire time after `after` of an active schedule, else null. */
export function nextScheduledRun(spec: JobSpec, after: Date): Date | null {
  if (!spec.active || spec.schedule === null) return null;
  return nextFire(spec.schedule, spec.timezone ?? 'UTC', after);
}

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
    timezone: spec.timezone ?? 'UTC',
    missed_policy: spec.missedPolicy ?? 'run_once',
    overlap_policy: spec.overlapPolicy ?? 'skip',
  };
}

/** Folds job events into `jobs` (the latest version of each job) and `job_versions` (every version). */
export const jobsProjection = defineProjection<SchedulingTables>({
  name: 'jobs',
  tables: ['jobs', 'job_versions'],
  canHandle: ['JobCreated', 'JobUpdated', 'RunRequested', 'ScheduledRunSkipped', 'FireQueued'],
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
              last_fire_at: null,
              queued_fire_at: null,
              next_scheduled_run: nextScheduledRun(e.data.spec, at),
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
        case 'JobUpdated': {
          const spec = e.data.spec;
          await db
            .updateTable('jobs')
            .set({
              ...columns(spec),
              version: e.data.version,
              version_id: e.data.versionId,
              updated_at: at,
              ...(spec.active && spec.schedule !== null ? {} : { queued_fire_at: null }),
              // From the later of this change and the last fire (a schedule never fires a time twice).
              next_scheduled_run: nextScheduledRun(spec, at),
            })
            .where('id', '=', jobId)
            .execute();
          if (spec.active && spec.schedule !== null) {
            const row = await db
              .selectFrom('jobs')
              .select('last_fire_at')
              .where('id', '=', jobId)
              .executeTakeFirst();
            if (row?.last_fire_at && row.last_fire_at.getTime() > at.getTime())
              await db
                .updateTable('jobs')
                .set({ next_scheduled_run: nextScheduledRun(spec, row.last_fire_at) })
                .where('id', '=', jobId)
                .execute();
          }
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
        }
        case 'RunRequested':
        case 'ScheduledRunSkipped':
        case 'FireQueued': {
          const fireAt = e.data.fireAt;
          if (!fireAt) break;
          const fired = new Date(fireAt);
          if (e.type === 'FireQueued')
            await db.updateTable('jobs').set({ queued_fire_at: fired }).where('id', '=', jobId).execute();
          else
            await db
              .updateTable('jobs')
              .set({ queued_fire_at: null })
              .where('id', '=', jobId)
              .where('queued_fire_at', '=', fired)
              .execute();
          const row = await db
            .selectFrom('jobs')
            .select(['schedule', 'timezone', 'active', 'last_fire_at'])
            .where('id', '=', jobId)
            .executeTakeFirst();
          if (!row || (row.last_fire_at && row.last_fire_at.getTime() >= fired.getTime())) break;
          await db
            .updateTable('jobs')
            .set({
              last_fire_at: fired,
              next_scheduled_run:
                row.active && row.schedule ? nextFire(row.schedule, row.timezone, fired) : null,
            })
            .where('id', '=', jobId)
            .execute();
          break;
        }
      }
    }
  },
});
