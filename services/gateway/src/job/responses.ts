import { createHash } from 'node:crypto';
import { z } from 'zod';
import { jobKindSchema, jobManifestSchema, runStatusSchema, runTriggerSchema } from '#libs/contracts';
import { notFound } from '#libs/http';
import { JobNotFound } from './jobs.service.js';
import type { ClientFlavour } from '../compat.js';
import type { JobRow, JobVersionRow } from '../../../scheduling/src/job/read-models/jobs.queries.js';
import type { RunRecord } from '../../../execution/src/run/read-models/runs.queries.js';
import { compatJobRef } from './job-ref.js';

/** Required uuid fields of the compatible API that Runway may not have (no configuration uploaded, system actor). */
export const NIL_UUID = '00000000-0000-0000-0000-000000000000';
const uuidOrNil = (s: string | null | undefined) =>
  s && /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(s) ? s : NIL_UUID;
const iso = (d: Date | null | undefined) => (d ? d.toISOString() : null);

const runStatus = runStatusSchema;

export const scriptResponse = z.object({
  id: z.string().uuid(),
  name: z.string(),
  description: z.string(),
  entry_point: z.string(),
  script_type: jobKindSchema,
  script_url: z.string().describe('public URL of an interactive job; "" for batch jobs'),
  version: z.number().int(),
  active: z.boolean(),
  created_by: z.string().uuid(),
  workspace_id: z.string().uuid(),
  date_added: z.string(),
  date_updated: z.string(),
  schedule: z.string().nullable(),
  profile: z.string().nullable(),
  next_scheduled_run: z.string().nullable(),
  timezone: z.string().describe('Runway: IANA time zone of the schedule'),
  missed_policy: z
    .enum(['run_once', 'skip', 'run_all'])
    .describe('Runway: fire times missed while the scheduler was down'),
  overlap_policy: z
    .enum(['skip', 'queue', 'allow'])
    .describe('Runway: a scheduled fire while a run of the job is still active'),
  public_url: z
    .string()
    .nullable()
    .describe(
      'the public link (`…/p/<token>/`): only in the answer that made it; the token is stored hashed',
    ),
  public_secret: z.string().nullable(),
  public_link_enabled: z.boolean().describe('Runway: whether the job has a working public link'),
  timeout_seconds: z
    .number()
    .int()
    .nullable()
    .describe('Runway: run timeout of the job; null = the server default'),
  job_ref: z.string().describe('dlt-runtime 0.26.1: the job reference (the job name)'),
  job_definition: z
    .record(z.string(), z.unknown())
    .describe('dlt-runtime 0.26.1: the job definition (manifest engine 1), derived from the job'),
  job_definition_engine_version: z.number().int().describe('1 (dlt-runtime 0.26.1) or 2 (dlthub)'),
  job_definition_hash: z.string().describe('base64 SHA3-256 of the job definition'),
  triggers: z.array(z.string()).describe('dlt-runtime 0.26.1: `schedule:<cron>` for a scheduled job'),
  default_trigger: z.string().nullable(),
  archived: z.boolean(),
});
export type ScriptResponse = z.infer<typeof scriptResponse>;

export const runResponse = z.object({
  id: z.string().uuid(),
  number: z.number().int(),
  status: runStatus.describe(
    'the compatible status: a skipped run shows as cancelled (the dlt CLI follows a skipped run forever); runway_status has the real one',
  ),
  runway_status: runStatus.describe('Runway: the run status, including skipped'),
  trigger: z
    .enum(['manual', 'schedule'])
    .describe('the compatible enum: runs triggered through the API show as manual'),
  workspace_id: z.string().uuid(),
  deployment_id: z.string().uuid(),
  configuration_id: z.string().uuid().describe('nil UUID when the workspace had no configuration'),
  script_version_id: z.string().uuid(),
  date_added: z.string(),
  date_updated: z.string(),
  profile: z.string().nullable(),
  time_started: z.string().nullable(),
  time_ended: z.string().nullable(),
  duration: z.number().int().nullable().describe('seconds'),
  logs: z.string().nullable().describe('URL of the logs route'),
  triggered_by: z.string().uuid().nullable(),
  script_id: z.string().uuid(),
  runway_trigger: runTriggerSchema,
  script_version: z.number().int(),
  deployment_version: z.number().int().nullable(),
  configuration_version: z.number().int().nullable(),
  exit_code: z.number().int().nullable(),
  signal: z.string().nullable(),
  failure_reason: z.string().nullable(),
  message: z.string().nullable(),
  stderr_tail: z.array(z.string()).nullable(),
  worker_id: z.string().nullable(),
  pid: z.number().int().nullable(),
  trigger_source: z
    .string()
    .nullable()
    .describe('Runway: manifest jobs, the trigger string that made the run (every:5m, job.success:jobs.a.b)'),
  interval_start: z.string().nullable().describe("manifest jobs: start of the run's work window (ISO UTC)"),
  interval_end: z
    .string()
    .nullable()
    .describe("manifest jobs: end of the run's work window (ISO UTC, exclusive)"),
  refresh: z.boolean().describe('Runway: manifest jobs, the run restarts from interval.start'),
  result: z
    .object({
      job_ref: z.string(),
      type: z.string().describe('the Python type of what the function returned'),
      value: z.unknown().describe('the value (JSON); null when truncated'),
      text: z.string().describe('the value as JSON text (the first 65,536 characters when truncated)'),
      truncated: z.boolean(),
      bytes: z.number().int().describe('size of the whole JSON text'),
    })
    .nullable()
    .describe(
      "Runway: manifest jobs run by dlt's job launcher, what the job's function returned (known secrets masked); null: no result",
    ),
});
export type RunResponse = z.infer<typeof runResponse>;

export const detailedScriptResponse = scriptResponse.extend({ last_run: runResponse.nullable() });
export const detailedRunResponse = runResponse.extend({
  script: scriptResponse,
  status_timeline: z.array(z.object({ status: runStatus, at: z.string(), reason: z.string() })).optional(),
});
export type DetailedRunResponse = z.infer<typeof detailedRunResponse>;
export const scriptVersionResponse = z.object({
  id: z.string().uuid(),
  script_id: z.string().uuid(),
  name: z.string(),
  description: z.string(),
  entry_point: z.string(),
  script_type: jobKindSchema,
  version: z.number().int(),
  active: z.boolean(),
  created_by: z.string().uuid(),
  date_added: z.string(),
  date_updated: z.string(),
  profile: z.string().nullable(),
  schedule: z.string().nullable(),
  timeout_seconds: z.number().int().nullable(),
  changed: z.array(z.string()),
});
export const logsResponse = z.object({ run: detailedRunResponse, logs: z.string().nullable() });
export const listOf = <T extends z.ZodType>(item: T) =>
  z.object({
    items: z.array(item),
    limit: z.number().int(),
    offset: z.number().int(),
    total: z.number().int(),
  });

export function toScript(j: JobRow, publicUrl: string): ScriptResponse {
  return {
    id: j.id,
    name: j.name,
    description: j.description,
    entry_point: j.entry_point,
    script_type: j.kind,
    script_url: j.kind === 'interactive' ? `${publicUrl}/i/${j.id}/` : '',
    version: j.version,
    active: j.active,
    created_by: uuidOrNil(j.created_by),
    workspace_id: j.workspace_id,
    date_added: j.created_at.toISOString(),
    date_updated: j.updated_at.toISOString(),
    schedule: j.schedule,
    profile: j.profile,
    next_scheduled_run: j.next_scheduled_run ? j.next_scheduled_run.toISOString() : null,
    timezone: j.timezone,
    missed_policy: j.missed_policy,
    overlap_policy: j.overlap_policy,
    public_url: null,
    public_secret: null,
    public_link_enabled: j.public_link_hash !== null,
    timeout_seconds: j.timeout_seconds,
    ...jobDefinitionOf(j),
    archived: j.archived,
  };
}

/** Module of an entry point file (`pipelines/load.py` → `pipelines.load`). */
const moduleOf = (entryPoint: string) => entryPoint.replace(/\.py$/, '').split('/').join('.');

/**
 * The job as dlt-runtime 0.26.1 reads it: a job definition of manifest engine 1 (job_ref = the job's
 * name; a module entry point run by dlt's module launcher; `schedule:<cron>` for a scheduled job;
 * manual launch allowed).
 */
export function jobDefinitionOf(j: JobRow) {
  const stored = jobManifestSchema.safeParse(j.manifest);
  if (j.manifest && stored.success) {
    const m = stored.data;
    return {
      job_ref: m.jobRef,
      job_definition: m.definition,
      job_definition_engine_version: m.engineVersion,
      job_definition_hash: m.definitionHash,
      triggers: m.triggers,
      default_trigger: m.defaultTrigger,
    };
  }
  const triggers = j.schedule ? [`schedule:${j.schedule}`] : [];
  const definition = {
    job_ref: compatJobRef(j.name),
    entry_point: {
      module: moduleOf(j.entry_point),
      function: null,
      job_type: j.kind,
      launcher: 'dlt._workspace.deployment.launchers.module',
    },
    triggers,
    execute: j.timeout_seconds ? { timeout: { timeout: j.timeout_seconds } } : {},
    expose: { manual: true },
    ...(j.description ? { description: j.description } : {}),
    ...(triggers[0] ? { default_trigger: triggers[0] } : {}),
  };
  return {
    job_ref: definition.job_ref,
    job_definition: definition,
    job_definition_engine_version: 1,
    job_definition_hash: createHash('sha3-256').update(JSON.stringify(definition)).digest('base64'),
    triggers,
    default_trigger: triggers[0] ?? null,
  };
}

export function toScriptVersion(v: JobVersionRow) {
  return {
    id: v.id,
    script_id: v.job_id,
    name: v.name,
    description: v.description,
    entry_point: v.entry_point,
    script_type: v.kind,
    version: v.version,
    active: v.active,
    created_by: uuidOrNil(v.created_by),
    date_added: v.created_at.toISOString(),
    date_updated: v.created_at.toISOString(),
    profile: v.profile,
    schedule: v.schedule,
    timeout_seconds: v.timeout_seconds,
    changed: v.changed,
  };
}

/**
 * The compatible status for the calling client. dlt-runtime 0.20's `logs -f` ends only on
 * completed / failed / cancelled (reference §7.3, §8.13): a skipped run shows as cancelled.
 * dlt-runtime 0.26.1 knows `skipped` but not `finalizing` (its RunStatus enum would reject it): a
 * finalizing run shows as running.
 */
export function compatibleStatus(status: RunRecord['status'], flavour: ClientFlavour): RunResponse['status'] {
  const s = status as RunResponse['status'];
  if (flavour === 'runtime-026') return s === 'finalizing' ? 'running' : s;
  return s === 'skipped' ? 'cancelled' : s;
}

export function toRun(r: RunRecord, publicUrl: string, flavour: ClientFlavour = 'classic'): RunResponse {
  const trigger = r.trigger as RunResponse['runway_trigger'];
  return {
    id: r.id,
    number: r.number,
    status: compatibleStatus(r.status, flavour),
    runway_status: r.status as RunResponse['runway_status'],
    trigger: trigger === 'schedule' ? 'schedule' : 'manual',
    workspace_id: r.workspace_id,
    deployment_id: uuidOrNil(r.deployment_id),
    configuration_id: uuidOrNil(r.configuration_id),
    script_version_id: r.job_version_id,
    date_added: r.created_at.toISOString(),
    date_updated: r.updated_at.toISOString(),
    profile: r.profile,
    time_started: iso(r.started_at),
    time_ended: iso(r.ended_at),
    duration: r.duration_ms === null ? null : Math.round(r.duration_ms / 1000),
    logs: `${publicUrl}/api/v1/workspaces/${r.workspace_id}/runs/${r.id}/logs`,
    triggered_by: r.requested_by && uuidOrNil(r.requested_by) !== NIL_UUID ? r.requested_by : null,
    script_id: r.job_id,
    runway_trigger: trigger,
    script_version: r.job_version,
    deployment_version: r.deployment_version,
    configuration_version: r.configuration_version,
    exit_code: r.exit_code,
    signal: r.signal,
    failure_reason: r.failure_reason,
    message: r.message,
    stderr_tail: r.stderr_tail,
    worker_id: r.worker_id,
    pid: r.pid,
    trigger_source: r.trigger_source ?? null,
    interval_start: iso(r.interval_start),
    interval_end: iso(r.interval_end),
    refresh: r.refresh ?? false,
    result: runResultOf(r.result),
  };
}

/** The stored job result (RunResultReported) as the API shows it: the JSON parsed when it is whole. */
function runResultOf(r: RunRecord['result'] | undefined): RunResponse['result'] {
  if (!r) return null;
  let value: unknown = null;
  if (!r.truncated) {
    try {
      value = JSON.parse(r.value);
    } catch {
      value = null;
    }
  }
  return { job_ref: r.jobRef, type: r.type, value, text: r.value, truncated: r.truncated, bytes: r.bytes };
}

/** The compatible API's word for a job that is not there. */
export function asScriptError(err: unknown): never {
  if (err instanceof JobNotFound) throw notFound(`script ${err.ref} not found`);
  throw err;
}
