import type { QueryCreator } from 'kysely';
import {
  JobCreated,
  JobDeleted,
  JobUpdated,
  PublicLinkEnabled,
  PublicLinkRevoked,
  PublicLinkRotated,
  WebhookEnabled,
  WebhookRevoked,
  WebhookRotated,
  RunRequested,
  ScheduledRunSkipped,
  type JobSpec,
} from '#libs/contracts';
import { defineProjection, eventsOf } from '#libs/projections';
import type { SchedulingTables } from '../../migrations/index.js';
import { nextFire } from '../../scheduler/cron.js';
import { evolveFireBook, type FireBook } from '../fire-book.js';
import { FireQueued, type JobEvent } from '../job.events.js';

/** The next fire time after `after` of an active schedule, else null. */
export function nextScheduledRun(spec: JobSpec, after: Date): Date | null {
  if (!spec.active || spec.schedule === null) return null;
  return nextFire(spec.schedule, spec.timezone ?? 'UTC', after);
}

/** The manifest columns of `jobs`. */
function manifestColumns(spec: JobSpec) {
  const m = spec.manifest ?? null;
  return {
    job_ref: m?.jobRef ?? null,
    triggers: m?.triggers ?? [],
    archived: m?.archived ?? false,
    deployment_module: m?.deploymentModule ?? null,
    manifest: m === null ? null : JSON.stringify(m),
  };
}

function columns(spec: JobSpec) {
  return {
    manifest: spec.manifest ? JSON.stringify(spec.manifest) : null,
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

const iso = (d: Date | null): string | null => (d ? d.toISOString() : null);
const date = (t: string | null): Date | null => (t ? new Date(t) : null);

/** The fire bookkeeping of a `jobs` row, as the job decider keeps it. */
function bookOf(row: { last_fire_at: Date | null; queued_fire_at: Date | null }): FireBook {
  return { lastFireAt: iso(row.last_fire_at), queuedFireAt: iso(row.queued_fire_at) };
}

/**
 * The fire events of a batch (RunRequested with a fire time, ScheduledRunSkipped, FireQueued),
 * folded by job with the decider's own rule (evolveFireBook): `last_fire_at` / `queued_fire_at`
 * as the job has them, and `next_scheduled_run` after the latest fire. One select and one
 * multi-row upsert whatever the number of fires (2,000 jobs firing at once).
 */
async function applyFires(
  db: QueryCreator<SchedulingTables>,
  fires: { jobId: string; event: JobEvent }[],
): Promise<void> {
  if (fires.length === 0) return;
  const byJob = new Map<string, JobEvent[]>();
  for (const f of fires) byJob.set(f.jobId, [...(byJob.get(f.jobId) ?? []), f.event]);
  const rows = await db
    .selectFrom('jobs')
    .selectAll()
    .where('id', 'in', [...byJob.keys()])
    .execute();
  const changed = rows.flatMap((row) => {
    const before = bookOf(row);
    const after = (byJob.get(row.id) ?? []).reduce(evolveFireBook, before);
    const later = after.lastFireAt !== before.lastFireAt;
    if (!later && after.queuedFireAt === before.queuedFireAt) return [];
    const last = date(after.lastFireAt);
    return [
      {
        ...row,
        queued_fire_at: date(after.queuedFireAt),
        ...(later && last
          ? {
              last_fire_at: last,
              next_scheduled_run:
                row.active && row.schedule ? nextFire(row.schedule, row.timezone, last) : null,
            }
          : {}),
      },
    ];
  });
  // At most 1,000 rows per statement (PostgreSQL takes 65,535 parameters).
  for (let i = 0; i < changed.length; i += 1000)
    await db
      .insertInto('jobs')
      .values(changed.slice(i, i + 1000))
      .onConflict((oc) =>
        oc.column('id').doUpdateSet((eb) => ({
          last_fire_at: eb.ref('excluded.last_fire_at'),
          next_scheduled_run: eb.ref('excluded.next_scheduled_run'),
          queued_fire_at: eb.ref('excluded.queued_fire_at'),
        })),
      )
      .execute();
}

const handled = eventsOf(
  JobCreated,
  JobUpdated,
  JobDeleted,
  RunRequested,
  ScheduledRunSkipped,
  FireQueued,
  PublicLinkEnabled,
  PublicLinkRotated,
  PublicLinkRevoked,
  WebhookEnabled,
  WebhookRotated,
  WebhookRevoked,
);

/** Folds job events into `jobs` (the latest version of each job) and `job_versions` (every version). */
export const jobsProjection = defineProjection<SchedulingTables>({
  name: 'jobs',
  tables: ['jobs', 'job_versions'],
  canHandle: handled.types,
  async apply(db, events) {
    // Fires are folded (applyFires) until another event of the batch needs the rows as they are.
    let fires: { jobId: string; event: JobEvent }[] = [];
    const flush = async () => {
      await applyFires(db, fires);
      fires = [];
    };
    for (const e of handled.select(events)) {
      const jobId = e.aggregate.id;
      if (
        (e.type === 'RunRequested' && e.data.fireAt) ||
        e.type === 'ScheduledRunSkipped' ||
        e.type === 'FireQueued'
      ) {
        fires.push({ jobId, event: e });
        continue;
      }
      if (e.type === 'RunRequested') continue; // not scheduled: nothing to change here
      await flush();
      const workspaceId = e.aggregate.workspaceId;
      const at = new Date(e.time);
      switch (e.type) {
        case 'JobCreated': {
          const row = {
            ...columns(e.data.spec),
            ...manifestColumns(e.data.spec),
            version: e.data.version,
            version_id: e.data.versionId,
          };
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
              public_link_hash: null,
              public_link_at: null,
            })
            .onConflict((oc) => oc.column('id').doNothing())
            .execute();
          await db
            .insertInto('job_versions')
            .values({
              id: e.data.versionId,
              job_id: jobId,
              workspace_id: workspaceId,
              version: e.data.version,
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
          const row = await db
            .selectFrom('jobs')
            .select(['last_fire_at', 'queued_fire_at'])
            .where('id', '=', jobId)
            .executeTakeFirst();
          if (row) {
            const book = evolveFireBook(bookOf(row), e);
            // From the later of this change and the last fire (a schedule never fires a time twice).
            const from =
              row.last_fire_at && row.last_fire_at.getTime() > at.getTime() ? row.last_fire_at : at;
            await db
              .updateTable('jobs')
              .set({
                ...columns(spec),
                ...manifestColumns(spec),
                version: e.data.version,
                version_id: e.data.versionId,
                updated_at: at,
                queued_fire_at: date(book.queuedFireAt),
                next_scheduled_run: nextScheduledRun(spec, from),
              })
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
        case 'JobDeleted':
          // Gone from the jobs list (and from the scheduler's reads); its versions stay.
          await db.deleteFrom('jobs').where('id', '=', jobId).execute();
          break;
        case 'PublicLinkEnabled':
        case 'PublicLinkRotated':
          await db
            .updateTable('jobs')
            .set({ public_link_hash: e.data.tokenHash, public_link_at: at })
            .where('id', '=', jobId)
            .execute();
          break;
        case 'PublicLinkRevoked':
          await db
            .updateTable('jobs')
            .set({ public_link_hash: null, public_link_at: null })
            .where('id', '=', jobId)
            .execute();
          break;
        case 'WebhookEnabled':
        case 'WebhookRotated':
          await db
            .updateTable('jobs')
            .set({ webhook_hash: e.data.tokenHash, webhook_at: at })
            .where('id', '=', jobId)
            .execute();
          break;
        case 'WebhookRevoked':
          await db
            .updateTable('jobs')
            .set({ webhook_hash: null, webhook_at: null })
            .where('id', '=', jobId)
            .execute();
          break;
      }
    }
    await flush();
  },
});
