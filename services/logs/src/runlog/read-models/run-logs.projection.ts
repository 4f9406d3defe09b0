import {
  RunCancelled,
  RunCompleted,
  RunFailed,
  RunLogsSealed,
  RunSkipped,
  type RunStatus,
} from '#libs/contracts';
import { defineProjection, eventsOf } from '#libs/projections';
import type { LogsTables } from '../../migrations/index.js';

const handled = eventsOf(RunCompleted, RunFailed, RunCancelled, RunSkipped, RunLogsSealed);

/** The status each run end event means. */
const END_STATUS: Readonly<Record<'RunCompleted' | 'RunFailed' | 'RunCancelled' | 'RunSkipped', RunStatus>> =
  {
    RunCompleted: 'completed',
    RunFailed: 'failed',
    RunCancelled: 'cancelled',
    RunSkipped: 'skipped',
  };

/** `run_logs`: per run, when it ended (run events) and its seal (RunLogsSealed). */
export const runLogsProjection = defineProjection<LogsTables>({
  name: 'run_logs',
  tables: ['run_logs'],
  canHandle: handled.types,
  async apply(db, events) {
    for (const e of handled.select(events)) {
      const runId = e.aggregate.id;
      const workspaceId = e.aggregate.workspaceId;
      if (e.type === 'RunLogsSealed') {
        const seal = {
          sealed_at: new Date(e.data.sealedAt),
          sealed_by: e.data.sealedBy,
          line_count: e.data.lineCount,
          bytes: e.data.bytes,
        };
        await db
          .insertInto('run_logs')
          .values({ run_id: runId, workspace_id: workspaceId, ...seal })
          .onConflict((oc) => oc.column('run_id').doUpdateSet(seal))
          .execute();
        continue;
      }
      await db
        .insertInto('run_logs')
        .values({
          run_id: runId,
          workspace_id: workspaceId,
          ended_at: new Date(e.time),
          end_status: END_STATUS[e.type],
        })
        .onConflict((oc) =>
          oc.column('run_id').doUpdateSet((eb) => ({
            ended_at: eb.fn.coalesce('run_logs.ended_at', eb.ref('excluded.ended_at')),
            end_status: eb.fn.coalesce('run_logs.end_status', eb.ref('excluded.end_status')),
          })),
        )
        .execute();
    }
  },
});
