import type { ColumnType } from 'kysely';
import type { MigrationSet } from '#libs/database';
import type { RunResult, RunStateSummary, RunTraceSummary } from '../run/run.events.js';

/**
 * Tables of the execution service:
 * - `runs`, `run_status_timeline`, `run_telemetry`: read models (projection `runs`).
 * - `pipelines`, `pipeline_tables`, `pipeline_loads`, `run_pipelines`: read models (projection `pipelines`).
 * Run output is not here: it lives in the LOGS stream (`#libs/run-logs`; `run_output`, its first
 * home, is dropped by 0003).
 */
export const executionMigrations: MigrationSet = {
  owner: 'execution',
  migrations: [
    {
      name: '0001_runs',
      up: `
        CREATE TABLE runs (
          id uuid PRIMARY KEY,
          workspace_id uuid NOT NULL,
          job_id uuid NOT NULL,
          number integer NOT NULL,
          status text NOT NULL,
          trigger text NOT NULL,
          profile text NOT NULL,
          job_version integer NOT NULL,
          job_version_id uuid NOT NULL,
          entry_point text NOT NULL,
          kind text NOT NULL,
          timeout_seconds integer,
          deployment_id uuid,
          deployment_version integer,
          configuration_id uuid,
          configuration_version integer,
          requested_by text NOT NULL,
          created_at timestamptz NOT NULL,
          updated_at timestamptz NOT NULL,
          started_at timestamptz,
          ended_at timestamptz,
          duration_ms integer,
          exit_code integer,
          signal text,
          failure_reason text,
          message text,
          stderr_tail jsonb,
          worker_id text,
          host text,
          pid integer,
          UNIQUE (job_id, number)
        );
        CREATE INDEX runs_workspace_created ON runs (workspace_id, created_at DESC);
        CREATE INDEX runs_job_created ON runs (job_id, created_at DESC);
        CREATE INDEX runs_active ON runs (status) WHERE status IN ('starting', 'running', 'finalizing', 'cancelling');
        CREATE TABLE run_status_timeline (
          run_id uuid NOT NULL,
          seq bigint NOT NULL,
          idx integer NOT NULL,
          workspace_id uuid NOT NULL,
          status text NOT NULL,
          at timestamptz NOT NULL,
          reason text NOT NULL,
          PRIMARY KEY (run_id, seq, idx)
        );
        CREATE TABLE run_output (
          run_id uuid PRIMARY KEY,
          workspace_id uuid NOT NULL,
          text text NOT NULL,
          bytes integer NOT NULL,
          truncated boolean NOT NULL DEFAULT false,
          updated_at timestamptz NOT NULL
        );`,
    },
    {
      name: '0002_pipelines',
      up: `
        CREATE TABLE pipelines (
          workspace_id uuid NOT NULL,
          name text NOT NULL,
          destination text,
          dataset_name text,
          last_run_id uuid NOT NULL,
          last_job_id uuid,
          updated_at timestamptz NOT NULL,
          PRIMARY KEY (workspace_id, name)
        );
        CREATE TABLE pipeline_tables (
          workspace_id uuid NOT NULL,
          pipeline_name text NOT NULL,
          schema_name text NOT NULL,
          table_name text NOT NULL,
          parent text,
          write_disposition text,
          columns jsonb NOT NULL,
          last_run_id uuid NOT NULL,
          updated_at timestamptz NOT NULL,
          PRIMARY KEY (workspace_id, pipeline_name, schema_name, table_name)
        );
        CREATE TABLE pipeline_loads (
          workspace_id uuid NOT NULL,
          pipeline_name text NOT NULL,
          load_id text NOT NULL,
          run_id uuid NOT NULL,
          completed boolean NOT NULL,
          row_counts jsonb,
          at timestamptz NOT NULL,
          PRIMARY KEY (workspace_id, pipeline_name, load_id)
        );
        CREATE TABLE run_pipelines (
          run_id uuid NOT NULL,
          workspace_id uuid NOT NULL,
          pipeline_name text NOT NULL,
          destination text,
          dataset_name text,
          row_counts jsonb NOT NULL,
          loads jsonb NOT NULL,
          tables jsonb NOT NULL,
          PRIMARY KEY (run_id, pipeline_name)
        );`,
    },
    {
      name: '0003_drop_run_output',
      up: `DROP TABLE IF EXISTS run_output;`,
    },
    {
      // The run archiver's progress (run/run-archiver.ts): not a read model, its own cursor.
      name: '0004_run_archive_cursor',
      up: `
        CREATE TABLE run_archive_cursor (
          id integer PRIMARY KEY CHECK (id = 1),
          archived_before timestamptz NOT NULL,
          last_run_id uuid NOT NULL
        );
        CREATE INDEX runs_ended ON runs (updated_at, id)
          WHERE status IN ('completed', 'failed', 'cancelled', 'skipped');`,
    },
    {
      // The dashboard's keyset pages (newest first, created_at then id) with each filter, at any
      // depth of millions of runs; they supersede 0001's (workspace_id|job_id, created_at).
      name: '0005_runs_keyset_indexes',
      up: `
        CREATE INDEX runs_ws_created_id ON runs (workspace_id, created_at DESC, id DESC);
        CREATE INDEX runs_job_created_id ON runs (job_id, created_at DESC, id DESC);
        CREATE INDEX runs_ws_status_created_id ON runs (workspace_id, status, created_at DESC, id DESC);
        CREATE INDEX runs_ws_trigger_created_id ON runs (workspace_id, trigger, created_at DESC, id DESC);
        CREATE INDEX runs_job_status_created_id ON runs (job_id, status, created_at DESC, id DESC);
        CREATE INDEX runs_ws_started ON runs (workspace_id, started_at DESC) INCLUDE (created_at) WHERE started_at IS NOT NULL;
        DROP INDEX IF EXISTS runs_workspace_created;
        DROP INDEX IF EXISTS runs_job_created;
        CREATE INDEX run_pipelines_by_name ON run_pipelines (workspace_id, pipeline_name);
        ALTER TABLE pipeline_tables ADD COLUMN resource text;
        ALTER TABLE pipeline_loads ADD COLUMN duration_ms integer;
        ALTER TABLE run_pipelines ADD COLUMN duration_ms integer;`,
    },
    {
      // Interactive runs (docs/interactive.md): the app's worker endpoint (RunAppReady) and why a
      // completed run ended (RunCompleted.reason: idle).
      name: '0006_interactive_apps',
      up: `
        ALTER TABLE runs
          ADD COLUMN app_type text,
          ADD COLUMN app_host text,
          ADD COLUMN app_port integer,
          ADD COLUMN app_base_path text,
          ADD COLUMN app_ready_at timestamptz,
          ADD COLUMN app_idle_timeout_seconds integer,
          ADD COLUMN end_reason text;
        CREATE INDEX runs_job_number ON runs (job_id, number DESC);`,
    },
    {
      // Runs of manifest jobs (docs/manifest.md): the trigger string, the work window, refresh.
      name: '0007_run_manifest_trigger',
      up: `
        ALTER TABLE runs ADD COLUMN trigger_source text;
        ALTER TABLE runs ADD COLUMN interval_start timestamptz;
        ALTER TABLE runs ADD COLUMN interval_end timestamptz;
        ALTER TABLE runs ADD COLUMN refresh boolean NOT NULL DEFAULT false;`,
    },
    {
      // Manifest jobs: what the job's function returned (RunResultReported), as jsonb.
      name: '0008_run_result',
      up: `ALTER TABLE runs ADD COLUMN result jsonb;`,
    },
    {
      // What a run sent its beacon (docs/runs-telemetry.md): trace and state summaries, in order.
      name: '0009_run_telemetry',
      up: `
        CREATE TABLE run_telemetry (
          run_id uuid NOT NULL,
          seq bigint NOT NULL,
          idx integer NOT NULL,
          workspace_id uuid NOT NULL,
          kind text NOT NULL,
          summary jsonb NOT NULL,
          at timestamptz NOT NULL,
          PRIMARY KEY (run_id, seq, idx)
        );`,
    },
  ],
};

/** A trace (RunTraceReported) or a pipeline state (RunStateReported) a run reported. */
export interface RunTelemetryRow {
  run_id: string;
  seq: ColumnType<string, number, number>;
  idx: number;
  workspace_id: string;
  kind: 'trace' | 'state';
  summary: ColumnType<RunTraceSummary | RunStateSummary, string, string>;
  at: Date;
}

export interface RunArchiveCursorRow {
  id: number;
  archived_before: Date;
  last_run_id: string;
}

export interface RunRow {
  id: string;
  workspace_id: string;
  job_id: string;
  number: number;
  status: string;
  trigger: string;
  profile: string;
  job_version: number;
  job_version_id: string;
  entry_point: string;
  kind: string;
  timeout_seconds: number | null;
  deployment_id: string | null;
  deployment_version: number | null;
  configuration_id: string | null;
  configuration_version: number | null;
  requested_by: string;
  created_at: Date;
  updated_at: Date;
  started_at: Date | null;
  ended_at: Date | null;
  duration_ms: number | null;
  exit_code: number | null;
  signal: string | null;
  failure_reason: string | null;
  message: string | null;
  /** jsonb, written as JSON text. */
  stderr_tail: ColumnType<string[] | null, string | null, string | null>;
  worker_id: string | null;
  host: string | null;
  pid: number | null;
  /** Interactive runs: the app's worker endpoint, from RunAppReady (null before, and for batch runs). */
  app_type: string | null;
  app_host: string | null;
  app_port: number | null;
  app_base_path: string | null;
  app_ready_at: Date | null;
  app_idle_timeout_seconds: number | null;
  /** Completed runs: `exited`, or `idle` (an interactive app stopped for being idle). */
  end_reason: string | null;
  /** Manifest jobs: the trigger string (`every:5m`, `job.success:jobs.a.b`), the run's interval, refresh. */
  trigger_source: string | null;
  interval_start: Date | null;
  interval_end: Date | null;
  refresh: boolean;
  /** Manifest jobs: the job's result (RunResultReported without its event name), jsonb written as JSON text. */
  result: ColumnType<RunResult | null, string | null, string | null>;
}

export interface TimelineRow {
  run_id: string;
  seq: ColumnType<string, number, number>;
  idx: number;
  workspace_id: string;
  status: string;
  at: Date;
  reason: string;
}

type Json<T> = ColumnType<T, string, string>;

export interface PipelineRow {
  workspace_id: string;
  name: string;
  destination: string | null;
  dataset_name: string | null;
  last_run_id: string;
  last_job_id: string | null;
  updated_at: Date;
}

export interface PipelineTableRow {
  workspace_id: string;
  pipeline_name: string;
  schema_name: string;
  table_name: string;
  parent: string | null;
  write_disposition: string | null;
  columns: Json<{ name: string; dataType: string | null; nullable: boolean }[]>;
  last_run_id: string;
  updated_at: Date;
  /** 0005: the dlt resource filling the table (null before, or unknown). */
  resource: ColumnType<string | null, string | null | undefined, string | null>;
}

export interface PipelineLoadRow {
  workspace_id: string;
  pipeline_name: string;
  load_id: string;
  run_id: string;
  completed: boolean;
  row_counts: ColumnType<Record<string, number> | null, string | null, string | null>;
  at: Date;
  /** 0005: the load step's duration (ms), when the run reported it. */
  duration_ms: ColumnType<number | null, number | null | undefined, number | null>;
}

export interface RunPipelineRow {
  run_id: string;
  workspace_id: string;
  pipeline_name: string;
  destination: string | null;
  dataset_name: string | null;
  row_counts: Json<Record<string, number>>;
  loads: Json<{ loadId: string; completed: boolean }[]>;
  tables: Json<
    {
      schema: string;
      name: string;
      parent: string | null;
      resource?: string | null;
      writeDisposition: string | null;
      columns: { name: string; dataType: string | null; nullable: boolean }[];
    }[]
  >;
  /** 0005: the pipeline's trace duration in this run (ms), when reported. */
  duration_ms: ColumnType<number | null, number | null | undefined, number | null>;
}

/** The execution service's tables (a type, not an interface: kysely's withTables needs an index-compatible type). */
export type ExecutionTables = {
  runs: RunRow;
  run_status_timeline: TimelineRow;
  pipelines: PipelineRow;
  pipeline_tables: PipelineTableRow;
  pipeline_loads: PipelineLoadRow;
  run_pipelines: RunPipelineRow;
  run_archive_cursor: RunArchiveCursorRow;
  run_telemetry: RunTelemetryRow;
};
