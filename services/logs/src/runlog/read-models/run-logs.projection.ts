import { defineProjection } from '#libs/projections';
import type { StoredEvent } from '#libs/eventstore';
import { RunLogsSealed } from '#libs/contracts';
import type { LogsTables } from '../../migrations/index.js';

const TERMINAL: Record<string, string> = {
  RunCompleted: 'completed',
  RunFailed: 'failed',
  RunCancelled: 'cancelled',
  RunSkipped: 'skipped',
};

/** `run_logs`: per run, when it ended (run events) and its seal (RunLogsSealed). */
export const runLogsProjection = defineProjection<LogsTables>({
  name: 'run_logs',
  tables: ['run_logs'],
  canHandle: [...Object.keys(TERMINAL), 'RunLogsSealed'],
  async apply(db, events: readonly StoredEvent[]) {
    for (const e of events) {
      const runId = e.aggregate.id;
      const workspaceId = e.aggregate.workspaceId;
      const at = new Date(e.time);
      const status = TERMINAL[e.type];
      if (status) {
        await db
          .insertInto('run_logs')
          .values({ run_id: runId, workspace_id: workspaceId, ended_at: at, end_status: status })
          .onConflict((oc) =>
            oc.column('run_id').doUpdateSet((eb) => ({
              ended_at: eb.fn.coalesce('run_logs.ended_at', eb.ref('excluded.ended_at')),
              end_status: eb.fn.coalesce('run_logs.end_status', eb.ref('excluded.end_status')),
            })),
          )
          .execute();
      } else if (e.type === 'RunLogsSealed') {
        const d = RunLogsSealed.schema.parse(e.data);
        const seal = {
          sealed_at: new Date(d.sealedAt),
          sealed_by: d.sealedBy,
          line_count: d.lineCount,
          bytes: d.bytes,
        };
        await db
          .insertInto('run_logs')
          .values({ run_id: runId, workspace_id: workspaceId, ...seal })
          .onConflict((oc) => oc.column('run_id').doUpdateSet(seal))
          .execute();
      }
    }
  },
});
