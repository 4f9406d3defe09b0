import { sql, type Kysely } from 'kysely';
import type { MissedPolicy } from '#libs/contracts';
import type { SchedulingTables } from '../../migrations/index.js';

/** The scheduler's reads of the `jobs` read model (its only SQL). */

/** An active scheduled job as the scheduler plans it. */
export interface ScheduledJob {
  id: string;
  workspace_id: string;
  schedule: string;
  timezone: string;
  missed_policy: MissedPolicy;
  updated_at: Date;
  last_fire_at: Date | null;
}

/** One row: the number of active scheduled jobs and a hash of their ids and versions (changes with any of them). */
export async function scheduledJobsFingerprint(db: Kysely<SchedulingTables>): Promise<string> {
  const r = await sql<{ n: number; h: string }>`
    SELECT count(*)::int AS n, coalesce(sum(hashtext(id::text || ':' || version::text)), 0)::text AS h
    FROM jobs WHERE active AND schedule IS NOT NULL`.execute(db);
  const row = r.rows[0];
  return `${row?.n ?? 0}:${row?.h ?? ''}`;
}

/** The active scheduled jobs. */
export async function listScheduledJobs(db: Kysely<SchedulingTables>): Promise<ScheduledJob[]> {
  const rows = await db
    .selectFrom('jobs')
    .select(['id', 'workspace_id', 'schedule', 'timezone', 'missed_policy', 'updated_at', 'last_fire_at'])
    .where('active', '=', true)
    .where('schedule', 'is not', null)
    .execute();
  return rows.flatMap(({ schedule, ...r }) => (schedule === null ? [] : [{ ...r, schedule }]));
}
