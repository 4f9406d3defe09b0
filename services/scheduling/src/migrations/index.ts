import type { MigrationSet } from '#libs/database';

/** Read models of the scheduling service: `jobs` (one row per job, its latest version) and `job_versions`. */
export const schedulingMigrations: MigrationSet = {
  owner: 'scheduling',
  migrations: [
    {
      name: '0001_jobs',
      up: `
        CREATE TABLE jobs (
          id uuid PRIMARY KEY,
          workspace_id uuid NOT NULL,
          name text NOT NULL,
          description text NOT NULL,
          entry_point text NOT NULL,
          kind text NOT NULL CHECK (kind IN ('batch', 'interactive')),
          profile text,
          schedule text,
          active boolean NOT NULL,
          timeout_seconds integer,
          version integer NOT NULL,
          version_id uuid NOT NULL,
          created_by text NOT NULL,
          created_at timestamptz NOT NULL,
          updated_at timestamptz NOT NULL,
          UNIQUE (workspace_id, name)
        );
        CREATE TABLE job_versions (
          id uuid PRIMARY KEY,
          job_id uuid NOT NULL,
          workspace_id uuid NOT NULL,
          version integer NOT NULL,
          name text NOT NULL,
          description text NOT NULL,
          entry_point text NOT NULL,
          kind text NOT NULL,
          profile text,
          schedule text,
          active boolean NOT NULL,
          timeout_seconds integer,
          changed text[] NOT NULL,
          created_by text NOT NULL,
          created_at timestamptz NOT NULL,
          UNIQUE (job_id, version)
        );`,
    },
    {
      name: '0002_job_schedules',
      up: `
        ALTER TABLE jobs ADD COLUMN timezone text NOT NULL DEFAULT 'UTC';
        ALTER TABLE jobs ADD COLUMN missed_policy text NOT NULL DEFAULT 'run_once';
        ALTER TABLE jobs ADD COLUMN last_fire_at timestamptz;
        ALTER TABLE jobs ADD COLUMN next_scheduled_run timestamptz;
        ALTER TABLE job_versions ADD COLUMN timezone text NOT NULL DEFAULT 'UTC';
        ALTER TABLE job_versions ADD COLUMN missed_policy text NOT NULL DEFAULT 'run_once';
        CREATE INDEX jobs_scheduled ON jobs (active) WHERE schedule IS NOT NULL;`,
    },
    {
      name: '0003_job_overlap',
      up: `
        ALTER TABLE jobs ADD COLUMN overlap_policy text NOT NULL DEFAULT 'skip';
        ALTER TABLE jobs ADD COLUMN queued_fire_at timestamptz;
        ALTER TABLE job_versions ADD COLUMN overlap_policy text NOT NULL DEFAULT 'skip';
        CREATE TABLE job_runs (
          run_id uuid PRIMARY KEY,
          job_id uuid NOT NULL,
          workspace_id uuid NOT NULL,
          requested_at timestamptz NOT NULL,
          ended_status text,
          ended_at timestamptz,
          noted boolean NOT NULL DEFAULT false
        );
        CREATE INDEX job_runs_to_note ON job_runs (ended_at) WHERE ended_at IS NOT NULL AND NOT noted;`,
    },
    {
      name: '0004_job_snapshots',
      up: `
        CREATE TABLE job_snapshots (
          job_id uuid PRIMARY KEY,
          workspace_id uuid NOT NULL,
          last_seq bigint NOT NULL,
          format integer NOT NULL,
          state jsonb NOT NULL,
          updated_at timestamptz NOT NULL
        );`,
    },
    {
      // The run-end reactor tells jobs of their runs' ends straight from the run events: job_runs
      // only says which job a run belongs to (the run events do not name it).
      name: '0005_job_runs_lookup',
      up: `
        DROP INDEX IF EXISTS job_runs_to_note;
        ALTER TABLE job_runs DROP COLUMN IF EXISTS ended_status;
        ALTER TABLE job_runs DROP COLUMN IF EXISTS ended_at;
        ALTER TABLE job_runs DROP COLUMN IF EXISTS noted;`,
    },
    {
      // Scheduling's own view of the workspace's code and configuration (no reads of the
      // deployments / configurations services' tables).
      name: '0006_latest_versions',
      up: `
        CREATE TABLE latest_versions (
          workspace_id uuid PRIMARY KEY,
          deployment_id uuid,
          deployment_version integer,
          configuration_id uuid,
          configuration_version integer,
          configuration_profiles text[]
        );
        CREATE TABLE deployment_paths (
          deployment_id uuid NOT NULL,
          workspace_id uuid NOT NULL,
          path text NOT NULL,
          PRIMARY KEY (deployment_id, path)
        );`,
    },
    {
      // Jobs from a manifest (docs/manifest.md): their job ref, triggers (matched by the chain
      // reactor and selectors), deployment module (archiving) and the whole manifest part of the spec.
      name: '0007_manifest_jobs',
      up: `
        ALTER TABLE jobs ADD COLUMN job_ref text;
        ALTER TABLE jobs ADD COLUMN triggers text[] NOT NULL DEFAULT '{}';
        ALTER TABLE jobs ADD COLUMN archived boolean NOT NULL DEFAULT false;
        ALTER TABLE jobs ADD COLUMN deployment_module text;
        ALTER TABLE jobs ADD COLUMN manifest jsonb;
        ALTER TABLE job_versions ADD COLUMN manifest jsonb;
        CREATE INDEX jobs_triggers ON jobs USING gin (triggers);`,
    },
    {
      name: '0008_job_public_links',
      up: `
        ALTER TABLE jobs ADD COLUMN public_link_hash text;
        ALTER TABLE jobs ADD COLUMN public_link_at timestamptz;
        CREATE UNIQUE INDEX jobs_public_link_hash ON jobs (public_link_hash) WHERE public_link_hash IS NOT NULL;`,
    },
    {
      // Webhooks of manifest jobs with a `webhook:` trigger (POST /hooks/<token>): the token's hash only.
      name: '0009_job_webhooks',
      up: `
        ALTER TABLE jobs ADD COLUMN webhook_hash text;
        ALTER TABLE jobs ADD COLUMN webhook_at timestamptz;
        CREATE UNIQUE INDEX jobs_webhook_hash ON jobs (webhook_hash) WHERE webhook_hash IS NOT NULL;`,
    },
    {
      // Backfills of interval jobs and their slices (docs/manifest.md "Backfills").
      name: '0010_backfills',
      up: `
        CREATE TABLE backfills (
          id uuid PRIMARY KEY,
          workspace_id uuid NOT NULL,
          job_id uuid NOT NULL,
          from_at timestamptz NOT NULL,
          to_at timestamptz NOT NULL,
          mode text NOT NULL CHECK (mode IN ('sequential', 'parallel')),
          concurrency integer NOT NULL,
          status text NOT NULL CHECK (status IN ('running', 'completed', 'failed', 'cancelled')),
          reason text,
          slices jsonb NOT NULL,
          skipped_done integer NOT NULL,
          requested_by text NOT NULL,
          created_at timestamptz NOT NULL,
          updated_at timestamptz NOT NULL,
          ended_at timestamptz
        );
        CREATE INDEX backfills_job ON backfills (job_id, created_at);`,
    },
  ],
};

/** A slice of a backfill as the `backfills` read model keeps it. */
export interface BackfillSliceRow {
  start: string;
  end: string;
  status: 'pending' | 'requested' | 'completed' | 'failed' | 'cancelled';
  run_id: string | null;
  attempts: number;
}

export interface BackfillRow {
  id: string;
  workspace_id: string;
  job_id: string;
  from_at: Date;
  to_at: Date;
  mode: 'sequential' | 'parallel';
  concurrency: number;
  status: 'running' | 'completed' | 'failed' | 'cancelled';
  reason: string | null;
  /** BackfillSliceRow[]: JSON text on insert / update, the array on read (parsed with zod). */
  slices: unknown;
  skipped_done: number;
  requested_by: string;
  created_at: Date;
  updated_at: Date;
  ended_at: Date | null;
}

export interface JobRow {
  id: string;
  workspace_id: string;
  name: string;
  description: string;
  entry_point: string;
  kind: 'batch' | 'interactive';
  profile: string | null;
  schedule: string | null;
  active: boolean;
  timeout_seconds: number | null;
  timezone: string;
  missed_policy: 'run_once' | 'skip' | 'run_all';
  overlap_policy: 'skip' | 'queue' | 'allow';
  /** Manifest jobs: the job ref (= name), stored triggers, archived flag, deployment module, manifest part of the spec. */
  job_ref: string | null;
  triggers: string[];
  archived: boolean;
  deployment_module: string | null;
  manifest: unknown;
  /** Overlap policy queue: the fire time waiting for the active run to end. */
  queued_fire_at: Date | null;
  /** The last fire time handled (a run requested, skipped or queued for it). */
  last_fire_at: Date | null;
  /** The next fire time of the schedule (null: not scheduled or inactive). */
  next_scheduled_run: Date | null;
  version: number;
  version_id: string;
  created_by: string;
  created_at: Date;
  updated_at: Date;
  /** SHA-256 (hex) of the public link's token; null: no public link. */
  public_link_hash: string | null;
  /** When the current public link was enabled or rotated. */
  public_link_at: Date | null;
  /** SHA-256 (hex) of the webhook's token (`webhook:` trigger); null: no webhook. */
  webhook_hash: string | null;
  /** When the current webhook was enabled or rotated. */
  webhook_at: Date | null;
}

export interface JobVersionRow {
  id: string;
  job_id: string;
  workspace_id: string;
  version: number;
  name: string;
  description: string;
  entry_point: string;
  kind: 'batch' | 'interactive';
  profile: string | null;
  schedule: string | null;
  active: boolean;
  timeout_seconds: number | null;
  timezone: string;
  missed_policy: 'run_once' | 'skip' | 'run_all';
  overlap_policy: 'skip' | 'queue' | 'allow';
  manifest: unknown;
  changed: string[];
  created_by: string;
  created_at: Date;
}

/**
 * Projection `job_runs`: the job of every run requested (the run events do not name it), so the
 * run-end reactor can tell the job (NoteRunEnded) that a run it counts as active is over.
 */
export interface JobRunRow {
  run_id: string;
  job_id: string;
  workspace_id: string;
  requested_at: Date;
}

/**
 * Projection `latest_versions`: per workspace, its latest deployment and configuration version
 * (folded from DeploymentCreated / ConfigurationCreated), what a run request uses.
 */
export interface LatestVersionsRow {
  workspace_id: string;
  deployment_id: string | null;
  deployment_version: number | null;
  configuration_id: string | null;
  configuration_version: number | null;
  configuration_profiles: string[] | null;
}

/**
 * Projection `latest_versions`: the file paths of the deployments staged (DeploymentFilesStaged)
 * and of the workspace's latest one (an entry point must be one of them); older versions' go.
 */
export interface DeploymentPathRow {
  deployment_id: string;
  workspace_id: string;
  path: string;
}

/**
 * The job aggregates' folded state as of a stream sequence, written by the scheduler (a cache of
 * the event store: a start reads these and only the commits after them, not every job's history).
 */
export interface JobSnapshotRow {
  job_id: string;
  workspace_id: string;
  last_seq: string | number;
  format: number;
  state: unknown;
  updated_at: Date;
}

export interface SchedulingTables {
  job_snapshots: JobSnapshotRow;
  jobs: JobRow;
  job_versions: JobVersionRow;
  job_runs: JobRunRow;
  latest_versions: LatestVersionsRow;
  deployment_paths: DeploymentPathRow;
  backfills: BackfillRow;
}
