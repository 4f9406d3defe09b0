import type { LogLine } from '#libs/run-logs';
import type { JobRow } from '../job/jobs.service.js';
import type { RunOfJob, RunRecord } from '../run/runs.service.js';

/** The proto messages of runway.proto in Runway's own words (job, kind, run), from the read models. */

const iso = (d: Date | null | undefined) => (d ? d.toISOString() : '');
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** A proto message as proto-loader encodes it from a plain object. */
export type Message = Record<string, unknown>;

export function jobMessage(j: JobRow, publicUrl: string, lastRun?: RunOfJob): Message {
  return {
    id: j.id,
    name: j.name,
    description: j.description,
    entry_point: j.entry_point,
    kind: j.kind,
    url: j.kind === 'interactive' ? `${publicUrl}/i/${j.id}/` : '',
    version: j.version,
    active: j.active,
    created_by: j.created_by,
    workspace_id: j.workspace_id,
    date_added: iso(j.created_at),
    date_updated: iso(j.updated_at),
    schedule: j.schedule ?? '',
    profile: j.profile ?? '',
    next_scheduled_run: iso(j.next_scheduled_run),
    timeout_seconds: j.timeout_seconds ?? 0,
    timezone: j.timezone,
    missed_policy: j.missed_policy,
    overlap_policy: j.overlap_policy,
    public_link_enabled: j.public_link_hash !== null,
    ...(lastRun ? { last_run: runMessage(lastRun, publicUrl) } : {}),
  };
}

export function runMessage(
  { run: r, job }: { run: RunRecord; job?: JobRow | undefined },
  publicUrl: string,
): Message {
  return {
    id: r.id,
    number: r.number,
    status: r.status,
    trigger: r.trigger,
    workspace_id: r.workspace_id,
    deployment_id: r.deployment_id ?? '',
    configuration_id: r.configuration_id ?? '',
    job_version_id: r.job_version_id,
    date_added: iso(r.created_at),
    date_updated: iso(r.updated_at),
    profile: r.profile,
    time_started: iso(r.started_at),
    time_ended: iso(r.ended_at),
    duration: r.duration_ms === null ? 0 : Math.round(r.duration_ms / 1000),
    triggered_by: UUID.test(r.requested_by) ? r.requested_by : '', // '' for the scheduler
    job_id: r.job_id,
    job_version: r.job_version,
    deployment_version: r.deployment_version ?? 0,
    configuration_version: r.configuration_version ?? 0,
    exit_code: r.exit_code ?? 0,
    signal: r.signal ?? '',
    failure_reason: r.failure_reason ?? '',
    message: r.message ?? '',
    stderr_tail: r.stderr_tail ?? [],
    worker_id: r.worker_id ?? '',
    pid: r.pid ?? 0,
    ...(job ? { job: jobMessage(job, publicUrl) } : {}),
    ...(r.result
      ? {
          result: {
            job_ref: r.result.jobRef,
            type: r.result.type,
            value_json: r.result.value,
            truncated: r.result.truncated,
            bytes: r.result.bytes,
          },
        }
      : {}),
  };
}

export const logLineMessage = (l: LogLine) => ({
  line: { seq: l.seq, stream: l.stream, ts: l.ts, text: l.text, part: l.part ?? false },
});

/** null → unset (proto3 default: '' for strings, 0 for numbers, absent for messages). */
export const clean = (v: unknown): unknown =>
  Array.isArray(v)
    ? v.map(clean)
    : v && typeof v === 'object' && !(v instanceof Uint8Array)
      ? Object.fromEntries(Object.entries(v).flatMap(([k, x]) => (x === null ? [] : [[k, clean(x)]])))
      : v;
