import type { MigrationSet } from '#libs/database';

/**
 * Tables of the alerting service (all read models, folded from events):
 * - `alert_rules` (projection `alert_rules`): the rules per workspace, from AlertRule* events;
 * - `alert_runs` / `alert_jobs` (projection `alert_runs`): which job each run belongs to and the
 *   job's name, from scheduling's integration events (RunRequested, ScheduledRunSkipped, JobCreated,
 *   JobUpdated): alerting never reads another service's tables;
 * - `alert_deliveries` (projection `alert_deliveries`): per alert and channel, its sending
 *   (pending, delivered, dead = a dead letter after the last try).
 */
export const alertingMigrations: MigrationSet = {
  owner: 'alerting',
  migrations: [
    {
      name: '0001_alerting',
      up: `
        CREATE TABLE alert_rules (
          rule_id uuid PRIMARY KEY,
          workspace_id uuid NOT NULL,
          name text NOT NULL,
          job_id uuid,
          job_name text,
          conditions text NOT NULL,
          failures_in_row integer NOT NULL,
          webhook_url text,
          email_to text,
          rate_max integer NOT NULL,
          rate_window_seconds integer NOT NULL,
          enabled boolean NOT NULL,
          created_by text NOT NULL,
          created_at timestamptz NOT NULL,
          updated_at timestamptz NOT NULL,
          deleted_at timestamptz
        );
        CREATE INDEX alert_rules_workspace ON alert_rules (workspace_id) WHERE deleted_at IS NULL;
        CREATE TABLE alert_runs (
          run_id uuid PRIMARY KEY,
          workspace_id uuid NOT NULL,
          job_id uuid NOT NULL,
          run_number integer NOT NULL
        );
        CREATE TABLE alert_jobs (
          job_id uuid PRIMARY KEY,
          workspace_id uuid NOT NULL,
          name text NOT NULL
        );
        CREATE TABLE alert_deliveries (
          alert_id uuid NOT NULL,
          channel text NOT NULL,
          workspace_id uuid NOT NULL,
          rule_id uuid NOT NULL,
          run_id uuid,
          job_name text,
          conditions text NOT NULL,
          message text NOT NULL,
          suppressed integer NOT NULL,
          status text NOT NULL,
          attempts integer NOT NULL,
          last_error text,
          raised_at timestamptz NOT NULL,
          updated_at timestamptz NOT NULL,
          PRIMARY KEY (alert_id, channel)
        );
        CREATE INDEX alert_deliveries_workspace ON alert_deliveries (workspace_id, raised_at DESC);`,
    },
  ],
};

export interface AlertRuleRow {
  rule_id: string;
  workspace_id: string;
  name: string;
  job_id: string | null;
  job_name: string | null;
  /** Comma-separated conditions. */
  conditions: string;
  failures_in_row: number;
  webhook_url: string | null;
  /** Comma-separated addresses. */
  email_to: string | null;
  rate_max: number;
  rate_window_seconds: number;
  enabled: boolean;
  created_by: string;
  created_at: Date;
  updated_at: Date;
  deleted_at: Date | null;
}

export interface AlertRunRow {
  run_id: string;
  workspace_id: string;
  job_id: string;
  run_number: number;
}

export interface AlertJobRow {
  job_id: string;
  workspace_id: string;
  name: string;
}

export interface AlertDeliveryRow {
  alert_id: string;
  channel: string;
  workspace_id: string;
  rule_id: string;
  run_id: string | null;
  job_name: string | null;
  conditions: string;
  message: string;
  suppressed: number;
  /** pending | delivered | dead */
  status: string;
  attempts: number;
  last_error: string | null;
  raised_at: Date;
  updated_at: Date;
}

export interface AlertingTables {
  alert_rules: AlertRuleRow;
  alert_runs: AlertRunRow;
  alert_jobs: AlertJobRow;
  alert_deliveries: AlertDeliveryRow;
}
