import type { Kysely } from 'kysely';
import type { ExecutionTables } from '../../migrations/index.js';

/** The number and status of a run as the runs read model has it (a cancel is checked against it first). */
export function runForCancel(db: Kysely<ExecutionTables>, workspaceId: string, runId: string) {
  return db
    .selectFrom('runs')
    .select(['number', 'status'])
    .where('id', '=', runId)
    .where('workspace_id', '=', workspaceId)
    .executeTakeFirst();
}
