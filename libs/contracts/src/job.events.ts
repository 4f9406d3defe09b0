import { z } from 'zod';
import { defineEvent, type EventOf } from '#libs/events';
import { profileNameSchema } from './configuration.events.js';
import { jobKindSchema, missedPolicySchema, overlapPolicySchema, runTriggerSchema } from './enums.js';

const uuid = z.string().uuid();

/** Longest timeout a job may set (7 days); the server default is RUNWAY_RUN_TIMEOUT_MINUTES. */
export const MAX_JOB_TIMEOUT_SECONDS = 7 * 24 * 3600;

/** `refresh_propagation` (engine 2) / `refresh` (engine 1) of a manifest job (dlt's default: auto). */
export const refreshPropagationSchema = z.enum(['always', 'auto', 'block']);
export type RefreshPropagation = z.infer<typeof refreshPropagationSchema>;

/** A run's work window `[start, end)` (ISO UTC), as dlt's `compute_run_interval` gives it. */
export const runIntervalSchema = z.object({ start: z.string().datetime(), end: z.string().datetime() });
export type RunInterval = z.infer<typeof runIntervalSchema>;

/**
 * What a job deployed from a manifest (dlt-runtime 0.26.1 engine 1, the dlthub client engine 2)
 * declares beyond the job spec: docs/manifest.md. The job's name is its `jobRef`.
 */
export const jobManifestSchema = z.object({
  jobRef: z.string().min(1).max(500),
  engineVersion: z.number().int().min(1).max(2),
  /** The job definition as the client sent it (JSON). */
  definition: z.record(z.string(), z.unknown()),
  /** The manifest's `job_definition_hash` at the deploy that made this version. */
  definitionHash: z.string().max(200),
  /** The module that owns the job (`__deployment__`); null: an ad-hoc deploy (never archived). */
  deploymentModule: z.string().max(500).nullable(),
  /** Stored triggers, normalized (`schedule:…`, `every:5m`, `job.success:jobs.a.b`, …). */
  triggers: z.array(z.string().min(1).max(600)).max(50),
  defaultTrigger: z.string().max(600).nullable(),
  /** `entry_point.launcher`, `module`, `function`, `job_type`. */
  launcher: z.string().min(1).max(200),
  module: z.string().min(1).max(500),
  function: z.string().max(200).nullable(),
  jobType: z.enum(['batch', 'interactive']),
  /** Interactive jobs: `expose.interface`. */
  interface: z.enum(['gui', 'rest_api', 'mcp']).nullable(),
  interval: z.object({ start: z.string().datetime(), end: z.string().datetime().nullable() }).nullable(),
  /** Upstream job refs of `job.is_fresh:<ref>` constraints. */
  freshness: z.array(z.string().min(1).max(500)).max(50),
  refreshPropagation: refreshPropagationSchema,
  /** engine 1 `allow_external_schedulers` / engine 2 `incremental_mode: pipeline`. */
  externalSchedulers: z.boolean(),
  tags: z.array(z.string().min(1).max(200)).max(50),
  pipelineName: z.string().max(500).nullable(),
  /** `expose.manual` (default true): the synthetic `manual:<ref>` trigger. */
  manual: z.boolean(),
  /** No longer listed by its deployment module's manifest: never fires, keeps its history. */
  archived: z.boolean(),
});
export type JobManifest = z.infer<typeof jobManifestSchema>;

/** Everything a job version says (the job "script" of the compatible API). */
export const jobSpecSchema = z.object({
  name: z.string().min(1).max(500),
  description: z.string().max(10_000),
  /** Path of the script relative to the deployment root, as given (`pipelines/load.py`). */
  entryPoint: z.string().min(1).max(1024),
  kind: jobKindSchema,
  /** null: the kind's default profile (prod for batch, access for interactive). */
  profile: profileNameSchema.nullable(),
  /** Cron string (validated by the scheduling issue); null = not scheduled. */
  schedule: z.string().min(1).max(200).nullable(),
  active: z.boolean(),
  /** null: the server default (RUNWAY_RUN_TIMEOUT_MINUTES). */
  timeoutSeconds: z.number().int().min(1).max(MAX_JOB_TIMEOUT_SECONDS).nullable(),
  /** IANA time zone the schedule is read in (events stored before it existed read as UTC). */
  timezone: z.string().min(1).max(100).default('UTC'),
  /** What the scheduler does with fire times missed while it was down. */
  missedPolicy: missedPolicySchema.default('run_once'),
  /**
   * A scheduled fire while a run of the job is still active: `skip` (recorded as a skipped run),
   * `queue` (at most one fire waits for the active run to end) or `allow`. Events stored before it
   * existed read as `skip`. Manual and API runs are never held back by it.
   */
  overlapPolicy: overlapPolicySchema.default('skip'),
  /** Jobs deployed from a manifest (absent: a job of the per-script upsert). */
  manifest: jobManifestSchema.nullable().optional(),
});
export type JobSpec = z.infer<typeof jobSpecSchema>;

/** Aggregate `job`, id = uuidv5(name, workspace id): version 1 of a job. */
export const JobCreated = defineEvent(
  'JobCreated',
  z.object({
    jobId: uuid,
    versionId: uuid,
    /** 1, or the next version when a deleted job of the same name is created again. */
    version: z.number().int().min(1),
    spec: jobSpecSchema,
    createdBy: z.string().min(1),
  }),
);

/** A new version of a job: the whole spec as it is now, and which fields changed. */
export const JobUpdated = defineEvent(
  'JobUpdated',
  z.object({
    versionId: uuid,
    version: z.number().int().min(2),
    spec: jobSpecSchema,
    changed: z.array(z.string()).min(1),
    updatedBy: z.string().min(1),
  }),
);

/** A version of the workspace's code or configuration a run uses. */
export const versionRefSchema = z.object({ id: uuid, version: z.number().int().min(1) });
export type VersionRef = z.infer<typeof versionRefSchema>;

/**
 * A run was requested. Decided by the job aggregate, which numbers its runs 1, 2, 3 … without gaps.
 * It carries everything a worker needs to execute the run without reading a read model.
 */
/**
 * Manifest jobs: what the worker needs for dlt's launcher contract (`python -m <launcher> --run-id …
 * --trigger … --entry-point <json>`, docs/manifest.md): the job definition's `entry_point` and what
 * the entry point JSON adds to it.
 */
export const runLaunchSchema = z.object({
  jobRef: z.string().min(1).max(500),
  launcher: z.string().min(1).max(200),
  module: z.string().min(1).max(500),
  function: z.string().max(200).nullable(),
  /** The job's time zone (`interval_timezone`). */
  timezone: z.string().min(1).max(100),
  /** `allow_external_schedulers`. */
  externalSchedulers: z.boolean(),
  /** The entry point's `config` (TRuntimeEntryPoint.config), forwarded to the launcher as is. */
  config: z.record(z.string(), z.unknown()).optional(),
  /** `require.dependency_groups`: requirements.json groups installed on top of its `default_groups`. */
  dependencyGroups: z.array(z.string().min(1).max(200)).max(50).optional(),
});
export type RunLaunch = z.infer<typeof runLaunchSchema>;
/** The largest JSON body a webhook run carries (`POST /hooks/<token>`; larger: 413). */
export const WEBHOOK_PAYLOAD_MAX_BYTES = 16 * 1024;

export const RunRequested = defineEvent(
  'RunRequested',
  z.object({
    runId: uuid,
    number: z.number().int().min(1),
    trigger: runTriggerSchema,
    /** The profile the run uses (request, else job, else the kind's default). */
    profile: profileNameSchema,
    jobVersion: z.number().int().min(1),
    jobVersionId: uuid,
    entryPoint: z.string().min(1).max(1024),
    kind: jobKindSchema,
    timeoutSeconds: z.number().int().min(1).max(MAX_JOB_TIMEOUT_SECONDS).nullable(),
    /** The workspace's deployment / configuration version at the time of the request. */
    deployment: versionRefSchema.nullable(),
    configuration: versionRefSchema.nullable(),
    requestedBy: z.string().min(1),
    /** Scheduled runs: the fire time (ISO) this run is for; the job refuses fire times at or before its last. */
    fireAt: z.string().datetime().nullable().optional(),
    /** Manifest jobs: the trigger string that made the run (`every:5m`, `job.success:jobs.a.b`, `manual:jobs.a.b`). */
    triggerSource: z.string().min(1).max(600).optional(),
    /** Manifest jobs: the run's work window (dlt's `interval_start` / `interval_end`). */
    interval: runIntervalSchema.optional(),
    /** Manifest jobs: the run restarts from `interval.start` (a refresh asked for or propagated). */
    refresh: z.boolean().optional(),
    /** Interactive manifest jobs: what the interactive runtime serves (`expose.interface`). */
    interface: z.enum(['gui', 'rest_api', 'mcp']).optional(),
    /** Manifest jobs: the launcher contract's entry point (absent: the entry file runs as a script). */
    launch: runLaunchSchema.optional(),
    /** Webhook runs: the JSON body posted to the hook (compact, at most WEBHOOK_PAYLOAD_MAX_BYTES). */
    payload: z.string().max(WEBHOOK_PAYLOAD_MAX_BYTES).optional(),
  }),
);

/**
 * A scheduled fire that made no run: a run of the job was still active (overlap policy `skip`, or
 * `queue` with a fire already waiting), or the run could not be requested (nothing deployed, the
 * entry point or profile missing). Shown as a run in status `skipped` (numbered like the others,
 * ended at once, never pending); workers ignore it.
 */
export const ScheduledRunSkipped = defineEvent(
  'ScheduledRunSkipped',
  z.object({
    runId: uuid,
    number: z.number().int().min(1),
    trigger: runTriggerSchema,
    /** The profile the run would have used (null: it could not be told). */
    profile: profileNameSchema.nullable(),
    jobVersion: z.number().int().min(1),
    jobVersionId: uuid,
    entryPoint: z.string().min(1).max(1024),
    kind: jobKindSchema,
    deployment: versionRefSchema.nullable(),
    configuration: versionRefSchema.nullable(),
    requestedBy: z.string().min(1),
    fireAt: z.string().datetime(),
    reason: z.string().min(1).max(2000),
    /** Manifest jobs: the trigger string of the fire. */
    triggerSource: z.string().min(1).max(600).optional(),
  }),
);

/** The job is deleted: it no longer fires or runs; its versions and runs stay. Its name can be used again. */
export const JobDeleted = defineEvent('JobDeleted', z.object({ deletedBy: z.string().min(1) }));

/** SHA-256 (hex) of a public link's token: the token itself is never stored nor sent on the bus. */
export const tokenHashSchema = z.string().regex(/^[0-9a-f]{64}$/, 'a SHA-256 hex digest');

/**
 * Public links of an interactive job: `/p/<token>/` opens the job's app logged out. The gateway
 * makes the token and returns it once; the job keeps only its hash. Rotated: the old token stops
 * working and a new one does. Revoked: no token works; every gateway replica closes the sockets
 * opened with the old one when it reads the event.
 */
export const PublicLinkEnabled = defineEvent(
  'PublicLinkEnabled',
  z.object({ tokenHash: tokenHashSchema, by: z.string().min(1) }),
);
export const PublicLinkRotated = defineEvent(
  'PublicLinkRotated',
  z.object({ tokenHash: tokenHashSchema, previousHash: tokenHashSchema, by: z.string().min(1) }),
);
export const PublicLinkRevoked = defineEvent(
  'PublicLinkRevoked',
  z.object({ previousHash: tokenHashSchema, by: z.string().min(1) }),
);
export const publicLinkEvents = [PublicLinkEnabled, PublicLinkRotated, PublicLinkRevoked] as const;

/**
 * The webhook of a manifest job with a `webhook:` trigger: `POST /hooks/<token>` requests a run.
 * Like a public link, the gateway makes the token and shows it once; the job keeps its hash only.
 */
export const WebhookEnabled = defineEvent(
  'WebhookEnabled',
  z.object({ tokenHash: tokenHashSchema, by: z.string().min(1) }),
);
export const WebhookRotated = defineEvent(
  'WebhookRotated',
  z.object({ tokenHash: tokenHashSchema, previousHash: tokenHashSchema, by: z.string().min(1) }),
);
export const WebhookRevoked = defineEvent(
  'WebhookRevoked',
  z.object({ previousHash: tokenHashSchema, by: z.string().min(1) }),
);
export const webhookEvents = [WebhookEnabled, WebhookRotated, WebhookRevoked] as const;

/** The job's integration events (its private ones live in services/scheduling/src/job/job.events.ts). */
export const jobEvents = [
  JobCreated,
  JobUpdated,
  RunRequested,
  ScheduledRunSkipped,
  JobDeleted,
  ...publicLinkEvents,
  ...webhookEvents,
] as const;
export type JobEvent = EventOf<typeof jobEvents>;
