import { sql, type Kysely } from 'kysely';
import { TERMINAL_RUN_STATUSES } from '#libs/contracts';
import type { ExecutionTables } from '../../migrations/index.js';

/** The run archiver's reads and writes: the runs that ended, and its own cursor (not a read model). */

/** One archiver pass at a time across processes: a transaction-scoped advisory lock, or false. */
export async function tryArchiveLock(tx: Kysely<ExecutionTables>): Promise<boolean> {
  const locked = await sql<{
    ok: boolean;
  }>`SELECT pg_try_advisory_xact_lock(hashtext('runway.run-archiver')) AS ok`.execute(tx);
  return locked.rows[0]?.ok === true;
}

export interface ArchivePosition {
  /** Runs that ended before this are archived. */
  at: Date;
  /** The last run archived at `at` (runs that ended at the same instant are ordered by id). */
  id: string;
}

export function archiveCursor(tx: Kysely<ExecutionTables>) {
  return tx
    .selectFrom('run_archive_cursor')
    .select(['archived_before', 'last_run_id'])
    .where('id', '=', 1)
    .executeTakeFirst();
}

export async function saveArchiveCursor(tx: Kysely<ExecutionTables>, after: ArchivePosition): Promise<void> {
  await tx
    .insertInto('run_archive_cursor')
    .values({ id: 1, archived_before: after.at, last_run_id: after.id })
    .onConflict((oc) => oc.column('id').doUpdateSet({ archived_before: after.at, last_run_id: after.id }))
    .execute();
}

/**
 * Terminal runs last changed before `cutoff` and after `after`, in the order they ended. Keyset
 * pagination on (updated_at, id): runs that ended at the same instant are not skipped.
 */
export function endedRunsAfter(
  tx: Kysely<ExecutionTables>,
  cutoff: Date,
  after: ArchivePosition,
  limit: number,
) {
  return tx
    .selectFrom('runs')
    .select(['id', 'workspace_id', 'updated_at'])
    .where('status', 'in', [...TERMINAL_RUN_STATUSES])
    .where('updated_at', '<', cutoff)
    .where((eb) =>
      eb.or([
        eb('updated_at', '>', after.at),
        eb.and([eb('updated_at', '=', after.at), eb('id', '>', after.id)]),
      ]),
    )
    .orderBy('updated_at')
    .orderBy('id')
    .limit(limit)
    .execute();
}
