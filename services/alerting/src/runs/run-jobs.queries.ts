import type { Kysely } from 'kysely';
import type { AlertingTables } from '../migrations/index.js';

type Db = Kysely<AlertingTables>;

export interface RunOfJob {
  jobId: string;
  jobName: string | null;
  runNumber: number;
}

/** The job a run belongs to, with its name (undefined: not folded yet, or a run of no job). */
export async function jobOfRun(db: Db, workspaceId: string, runId: string): Promise<RunOfJob | undefined> {
  const row = await db
    .selectFrom('alert_runs')
    .leftJoin('alert_jobs', 'alert_jobs.job_id', 'alert_runs.job_id')
    .select(['alert_runs.job_id', 'alert_runs.run_number', 'alert_jobs.name'])
    .where('alert_runs.workspace_id', '=', workspaceId)
    .where('alert_runs.run_id', '=', runId)
    .executeTakeFirst();
  return row ? { jobId: row.job_id, jobName: row.name, runNumber: row.run_number } : undefined;
}

export async function jobName(db: Db, workspaceId: string, jobId: string): Promise<string | null> {
  const row = await db
    .selectFrom('alert_jobs')
    .select('name')
    .where('workspace_id', '=', workspaceId)
    .where('job_id', '=', jobId)
    .executeTakeFirst();
  return row?.name ?? null;
}
