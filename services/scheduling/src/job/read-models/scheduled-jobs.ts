import { sql, type Kysely } from 'kysely';
import type { MissedPolicy } from '#libs/contracts';
import type { SchedulingTables } from '../../migrations/index.js';

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

/** The scheduler's reads of the `jobs` read model (its only SQL). */
export class ScheduledJobs {
  constructor(private readonly db: Kysely<SchedulingTables>) {}

  /** One row: the number of active scheduled jobs and a hash of their ids and versions (changes with any of them). */
  async fingerprint(): Promise<string> {
    const r = await sql<{ n: number; h: string }>`
      SELECT count(*)::int AS n, coalesce(sum(hashtext(id::text || ':' || version::text)), 0)::text AS h
      FROM jobs WHERE active AND schedule IS NOT NULL`.execute(this.db);
    const row = r.rows[0];
    return `${row?.n ?? 0}:${row?.h ?? ''}`;
  }

  list(): Promise<ScheduledJob[]> {
    return this.db
      .selectFrom('jobs')
      .select(['id', 'workspace_id', 'schedule', 'timezone', 'missed_policy', 'updated_at', 'last_fire_at'])
      .where('active', '=', true)
      .where('schedule', 'is not', null)
      .execute() as Promise<ScheduledJob[]>;
  }
}
