import type { Kysely } from 'kysely';
import type { ExecutionTables } from '../../migrations/index.js';

/** The lease reaper's read: runs in progress (a worker holds them) whose status changed before `before`. */
export function activeRunsUnchangedSince(db: Kysely<ExecutionTables>, before: Date, limit: number) {
  return db
    .selectFrom('runs')
    .select(['id', 'workspace_id', 'worker_id', 'started_at', 'created_at'])
    .where('status', 'in', ['starting', 'running', 'finalizing', 'cancelling'])
    .where('updated_at', '<', before)
    .limit(limit)
    .execute();
}
