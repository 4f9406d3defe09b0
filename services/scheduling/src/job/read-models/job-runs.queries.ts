import type { Kysely } from 'kysely';
import type { SchedulingTables } from '../../migrations/index.js';

/** The job a run belongs to (undefined: no run of a job this read model has seen). */
export async function jobOfRun(
  db: Kysely<SchedulingTables>,
  workspaceId: string,
  runId: string,
): Promise<string | undefined> {
  const row = await db
    .selectFrom('job_runs')
    .select('job_id')
    .where('run_id', '=', runId)
    .where('workspace_id', '=', workspaceId)
    .executeTakeFirst();
  return row?.job_id;
}
