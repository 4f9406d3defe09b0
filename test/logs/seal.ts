import type { TestStack } from '../support/stack.js';

export interface RunLogRow {
  run_id: string;
  line_count: number | null;
  sealed_by: string | null;
}

/** The logs service's `run_logs` row of a run once its seal is recorded (RunLogsSealed). */
export async function waitForSealRecord(s: TestStack, runId: string, timeoutMs = 30_000): Promise<RunLogRow> {
  const db = s.env.newDb<{ run_logs: RunLogRow }>();
  const until = Date.now() + timeoutMs;
  for (;;) {
    const row = await db.selectFrom('run_logs').selectAll().where('run_id', '=', runId).executeTakeFirst();
    if (row && row.line_count !== null) return row;
    if (Date.now() > until) throw new Error(`the seal of run ${runId} was not recorded`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
