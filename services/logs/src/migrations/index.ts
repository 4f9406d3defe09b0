import type { MigrationSet } from '#libs/database';

/**
 * Tables of the logs service:
 * - `run_logs` (projection `run_logs`): per run, when it ended (from the run events) and whether
 *   and how its log was sealed (RunLogsSealed). The orphan sealer reads it.
 */
export const logsMigrations: MigrationSet = {
  owner: 'logs',
  migrations: [
    {
      name: '0001_run_logs',
      up: `
        CREATE TABLE run_logs (
          run_id uuid PRIMARY KEY,
          workspace_id uuid NOT NULL,
          ended_at timestamptz,
          end_status text,
          sealed_at timestamptz,
          sealed_by text,
          line_count integer,
          bytes bigint
        );
        CREATE INDEX run_logs_unsealed ON run_logs (ended_at) WHERE sealed_at IS NULL AND ended_at IS NOT NULL;`,
    },
  ],
};

export interface RunLogRow {
  run_id: string;
  workspace_id: string;
  ended_at: Date | null;
  end_status: string | null;
  sealed_at: Date | null;
  sealed_by: string | null;
  line_count: number | null;
  bytes: string | number | null;
}

export interface LogsTables {
  run_logs: RunLogRow;
}
