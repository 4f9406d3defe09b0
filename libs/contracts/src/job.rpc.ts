import { z } from 'zod';
import { jobKindSchema, missedPolicySchema, overlapPolicySchema, runTriggerSchema } from './enums.js';
import { WEBHOOK_PAYLOAD_MAX_BYTES } from './job.events.js';

/** Request/reply patterns of the scheduling (jobs, run requests) and execution (runs) services. */
export const JobRpc = {
  upsert: 'runway.rpc.scheduling.upsertJob',
  requestRun: 'runway.rpc.scheduling.requestRun',
  delete: 'runway.rpc.scheduling.deleteJob',
  publicLink: 'runway.rpc.scheduling.publicLink',
  webhook: 'runway.rpc.scheduling.webhook',
  wake: 'runway.rpc.scheduling.wakeJob',
  deployManifest: 'runway.rpc.scheduling.deployManifest',
  triggerJobs: 'runway.rpc.scheduling.triggerJobs',
  backfill: 'runway.rpc.scheduling.backfill',
  changeBackfill: 'runway.rpc.scheduling.changeBackfill',
} as const;
export const RunRpc = {
  cancel: 'runway.rpc.execution.cancelRun',
} as const;

const uuid = z.string().uuid();

/** Upsert by name. Omitted optional fields keep their value; null clears profile, schedule and timeout. */
export const upsertJobRequest = z.object({
  workspaceId: uuid,
  actor: z.string().min(1),
  commandId: z.string().min(1).max(200),
  name: z.string(),
  description: z.string(),
  entryPoint: z.string(),
  kind: jobKindSchema,
  active: z.boolean().optional(),
  profile: z.string().nullable().optional(),
  schedule: z.string().nullable().optional(),
  timeoutSeconds: z.number().int().nullable().optional(),
  /** IANA time zone of the schedule (omitted: keep; new job: UTC). */
  timezone: z.string().optional(),
  missedPolicy: missedPolicySchema.optional(),
  overlapPolicy: overlapPolicySchema.optional(),
});
export type UpsertJobRequest = z.infer<typeof upsertJobRequest>;
export const upsertJobReply = z.object({
  jobId: uuid,
  version: z.number().int().min(1),
  created: z.boolean(),
  changed: z.array(z.string()),
  seq: z.number().int().min(0),
});
export type UpsertJobReply = z.infer<typeof upsertJobReply>;

/** The command RequestRun (RunRequested is its event). */
export const requestRun = z.object({
  workspaceId: uuid,
  actor: z.string().min(1),
  commandId: z.string().min(1).max(200),
  jobId: uuid,
  trigger: runTriggerSchema,
  profile: z.string().nullable(),
  /** The job's entry point as the caller knows it: checked against the deployment before deciding. */
  entryPoint: z.string().optional(),
  /** Trigger webhook: the hash of the token the hook was called with (the job must still have it). */
  webhookHash: z
    .string()
    .regex(/^[0-9a-f]{64}$/)
    .optional(),
  /** Trigger webhook: the posted JSON body. */
  payload: z.string().max(WEBHOOK_PAYLOAD_MAX_BYTES).optional(),
});
export type RequestRun = z.infer<typeof requestRun>;
export const requestRunReply = z.object({
  runId: uuid,
  number: z.number().int().min(1),
  seq: z.number().int().min(0),
});
export type RequestRunReply = z.infer<typeof requestRunReply>;

export const cancelRunRequest = z.object({ workspaceId: uuid, actor: z.string().min(1), runId: uuid });
export type CancelRunRequest = z.infer<typeof cancelRunRequest>;
export const cancelRunReply = z.object({ runId: uuid, status: z.string(), seq: z.number().int().min(0) });
export type CancelRunReply = z.infer<typeof cancelRunReply>;

export const deleteJobRequest = z.object({
  workspaceId: uuid,
  actor: z.string().min(1),
  commandId: z.string().min(1).max(200),
  jobId: uuid,
});
export type DeleteJobRequest = z.infer<typeof deleteJobRequest>;
export const deleteJobReply = z.object({ jobId: uuid, seq: z.number().int().min(0) });
export type DeleteJobReply = z.infer<typeof deleteJobReply>;

/**
 * A manifest deploy (`PUT …/deployment_manifest` engine 1, `POST …/-deploy` engine 2): the job
 * definitions are checked by the scheduling service (docs/manifest.md), all before anything is stored.
 */
export const deployManifestRequest = z.object({
  workspaceId: uuid,
  actor: z.string().min(1),
  commandId: z.string().min(1).max(200),
  engineVersion: z.union([z.literal(1), z.literal(2)]),
  definitionHash: z.string().max(200),
  deploymentModule: z.string().min(1).max(500).nullable(),
  jobs: z.array(z.record(z.string(), z.unknown())).max(500),
  dryRun: z.boolean(),
});
export type DeployManifestRequest = z.infer<typeof deployManifestRequest>;
const manifestOutcomeJob = z.object({
  jobId: uuid,
  jobRef: z.string(),
  version: z.number().int().min(0),
  previousVersion: z.number().int().min(0).nullable(),
});
export type ManifestOutcomeJob = z.infer<typeof manifestOutcomeJob>;
export const deployManifestReply = z.object({
  added: z.array(manifestOutcomeJob),
  updated: z.array(manifestOutcomeJob),
  unchanged: z.array(manifestOutcomeJob),
  archived: z.array(manifestOutcomeJob),
  warnings: z.array(z.string()),
  seq: z.number().int().min(0),
});
export type DeployManifestReply = z.infer<typeof deployManifestReply>;

/** `POST …/scripts/trigger`: jobs by ref and / or selectors (matched server-side). */
export const triggerJobsRequest = z.object({
  workspaceId: uuid,
  actor: z.string().min(1),
  commandId: z.string().min(1).max(200),
  jobRefs: z.array(z.string().min(1).max(500)).max(500),
  selectors: z.array(z.string().min(1).max(600)).max(50),
  profile: z.string().nullable(),
  refresh: z.boolean(),
  dryRun: z.boolean(),
});
export type TriggerJobsRequest = z.infer<typeof triggerJobsRequest>;
/** dlt-runtime 0.26.1 TriggeredJobStatus values Runway gives. */
export const triggeredJobStatusSchema = z.enum([
  'triggered',
  'skipped_upstream_pending',
  'skipped_concurrency_limit',
  'skipped_out_of_interval',
]);
export const triggerJobsReply = z.object({
  triggered: z.array(
    z.object({
      jobId: uuid,
      jobRef: z.string(),
      matchedTriggers: z.array(z.string()),
      trigger: z.string(),
      status: triggeredJobStatusSchema,
      runId: uuid.nullable(),
      reason: z.string().nullable(),
    }),
  ),
  seq: z.number().int().min(0),
});
export type TriggerJobsReply = z.infer<typeof triggerJobsReply>;

/**
 * Starts a backfill of an interval job: its slices are the tick intervals in `[from, to)` not done
 * yet (all with `reprocess`), requested as the job's `interval.mode` paces them (docs/manifest.md).
 */
export const backfillRequest = z.object({
  workspaceId: uuid,
  actor: z.string().min(1),
  commandId: z.string().min(1).max(200),
  jobId: uuid,
  from: z.string().datetime({ offset: true }),
  to: z.string().datetime({ offset: true }),
  reprocess: z.boolean().default(false),
});
export type BackfillRequest = z.input<typeof backfillRequest>;
export const backfillReply = z.object({
  backfillId: uuid,
  jobId: uuid,
  mode: z.enum(['sequential', 'parallel']),
  concurrency: z.number().int().min(1),
  /** The planned slices, oldest first; `runId` set for those requested now. */
  slices: z.array(z.object({ start: z.string(), end: z.string(), runId: uuid.nullable() })),
  /** Intervals of the range left out: a run of the job already completed them. */
  skippedDone: z.number().int().min(0),
  seq: z.number().int().min(0),
});
export type BackfillReply = z.infer<typeof backfillReply>;

/** Cancels or resumes a backfill of a job. */
export const changeBackfillRequest = z.object({
  workspaceId: uuid,
  actor: z.string().min(1),
  commandId: z.string().min(1).max(200),
  jobId: uuid,
  backfillId: uuid,
  action: z.enum(['cancel', 'resume']),
});
export type ChangeBackfillRequest = z.infer<typeof changeBackfillRequest>;
/** `inFlight`: cancel, the runs that were in flight (to be cancelled); `changed`: whether anything was decided. */
export const changeBackfillReply = z.object({
  backfillId: uuid,
  changed: z.boolean(),
  inFlight: z.array(uuid),
  seq: z.number().int().min(0),
});
export type ChangeBackfillReply = z.infer<typeof changeBackfillReply>;

/**
 * Enable, rotate or revoke a job's public link. The gateway makes the token and sends only its
 * SHA-256 (`tokenHash`, required to enable or rotate).
 */
export const publicLinkRequest = z.object({
  workspaceId: uuid,
  actor: z.string().min(1),
  commandId: z.string().min(1).max(200),
  jobId: uuid,
  action: z.enum(['enable', 'rotate', 'revoke']),
  tokenHash: z
    .string()
    .regex(/^[0-9a-f]{64}$/)
    .optional(),
});
export type PublicLinkRequest = z.infer<typeof publicLinkRequest>;
/** `enabled`: whether a link works now; `changed`: whether the command changed anything (enable on an enabled link does not). */
export const publicLinkReply = z.object({
  jobId: uuid,
  enabled: z.boolean(),
  changed: z.boolean(),
  seq: z.number().int().min(0),
});
export type PublicLinkReply = z.infer<typeof publicLinkReply>;

/** Enable, rotate or revoke a manifest job's webhook (`webhook:` trigger); the token's hash only. */
export const webhookRequest = publicLinkRequest;
export type WebhookRequest = PublicLinkRequest;
export const webhookReply = publicLinkReply;
export type WebhookReply = PublicLinkReply;

/**
 * Wake an interactive job: a run with trigger `wake`, unless one of its runs is still active (then
 * nothing is requested and `runId` is null). At most one wake run at a time, whatever the number of
 * visitors and gateway replicas.
 */
export const wakeJobRequest = z.object({
  workspaceId: uuid,
  commandId: z.string().min(1).max(200),
  jobId: uuid,
});
export type WakeJobRequest = z.infer<typeof wakeJobRequest>;
export const wakeJobReply = z.object({ runId: uuid.nullable(), seq: z.number().int().min(0) });
export type WakeJobReply = z.infer<typeof wakeJobReply>;
