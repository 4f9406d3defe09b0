import { defineProjection, eventsOf } from '#libs/projections';
import {
  RunAppReady,
  RunCancelled,
  RunCompleted,
  RunFailed,
  RunRequested,
  RunSkipped,
  RunStarted,
  RunStarting,
  ScheduledRunSkipped,
  type JobEvent,
  type RunStatus,
} from '#libs/contracts';
import {
  RunCancelRequested,
  RunFinalizing,
  RunResultReported,
  RunSetUp,
  RunStateReported,
  RunTraceReported,
  type RunEvent,
} from '../run.events.js';
import type { Insertable } from 'kysely';
import type { ExecutionTables, RunRow, TimelineRow } from '../../migrations/index.js';

type Change = {
  status: RunStatus;
  at: Date;
  reason: string;
  set: Partial<Omit<RunRow, 'stderr_tail' | 'result'>> & { stderr_tail?: string | null };
};

function durationMs(from: Date | null, to: Date): number | null {
  return from ? Math.max(0, to.getTime() - from.getTime()) : null;
}

function exitText(exitCode: number | null, signal: string | null): string {
  return signal ? `process ended by signal ${signal}` : `process exited with code ${exitCode ?? '?'}`;
}

/** What a run event changes on its row, and its line in the status timeline. */
function changeOf(e: RunEvent, at: Date): Change | undefined {
  switch (e.type) {
    case 'RunStarting':
      return {
        status: 'starting',
        at,
        reason: `claimed by worker ${e.data.workerId}${e.data.host ? ` on ${e.data.host}` : ''}`,
        set: { worker_id: e.data.workerId, host: e.data.host },
      };
    case 'RunStarted': {
      const started = new Date(e.data.startedAt);
      return {
        status: 'running',
        at: started,
        reason: `process ${e.data.pid} started: ${e.data.command}`,
        set: { pid: e.data.pid, started_at: started },
      };
    }
    case 'RunAppReady':
      return {
        status: 'running',
        at: new Date(e.data.readyAt),
        reason: `${e.data.appType} app answers at ${e.data.address.host}:${e.data.address.port}${e.data.basePath}`,
        set: {
          app_type: e.data.appType,
          app_host: e.data.address.host,
          app_port: e.data.address.port,
          app_base_path: e.data.basePath,
          app_ready_at: new Date(e.data.readyAt),
          app_idle_timeout_seconds: e.data.idleTimeoutSeconds,
        },
      };
    case 'RunFinalizing': {
      const ended = new Date(e.data.endedAt);
      return {
        status: 'finalizing',
        at: ended,
        reason: exitText(e.data.exitCode, e.data.signal),
        set: { ended_at: ended, exit_code: e.data.exitCode, signal: e.data.signal },
      };
    }
    case 'RunCompleted':
      return {
        status: 'completed',
        at,
        reason:
          e.data.reason === 'idle'
            ? 'stopped: the app had no open connection for its idle time'
            : `exit code ${e.data.exitCode}`,
        set: {
          exit_code: e.data.exitCode,
          duration_ms: e.data.durationMs,
          end_reason: e.data.reason ?? 'exited',
        },
      };
    case 'RunFailed':
      return {
        status: 'failed',
        at,
        reason: `${e.data.reason}: ${e.data.message}`,
        set: {
          failure_reason: e.data.reason,
          message: e.data.message,
          exit_code: e.data.exitCode,
          signal: e.data.signal,
          duration_ms: e.data.durationMs,
          stderr_tail: JSON.stringify(e.data.stderrTail),
          ...(e.data.endedAt ? { ended_at: new Date(e.data.endedAt) } : {}),
        },
      };
    case 'RunCancelRequested':
      return { status: 'cancelling', at, reason: `cancel requested by ${e.data.by}`, set: {} };
    case 'RunCancelled':
      return {
        status: 'cancelled',
        at,
        reason: e.data.message,
        set: {
          message: e.data.message,
          exit_code: e.data.exitCode,
          signal: e.data.signal,
          duration_ms: e.data.durationMs,
          ...(e.data.endedAt ? { ended_at: new Date(e.data.endedAt) } : {}),
        },
      };
    case 'RunSkipped':
      return { status: 'skipped', at, reason: e.data.reason, set: { message: e.data.reason } };
    case 'RunSetUp':
      // A line of the `starting` phase in the timeline: the status stays `starting` (the 0.20 CLI waits for it).
      return {
        status: 'starting',
        at,
        reason: `setup: dependencies from ${e.data.source}, environment ${e.data.environment.slice(0, 12)}: ${
          e.data.ok ? (e.data.cacheHit ? 'cache hit' : 'installed') : 'install failed'
        } in ${e.data.durationMs} ms`,
        set: {},
      };
    case 'PipelineReported':
      return undefined; // the pipelines projection's
    case 'RunResultReported':
    case 'RunTraceReported':
    case 'RunStateReported':
      return undefined; // a column of the row / a row of run_telemetry, no status change (apply)
    default: {
      const unknown: never = e;
      throw new Error(`unknown run event ${JSON.stringify(unknown)}`);
    }
  }
}

/** RunRequested and ScheduledRunSkipped (job streams), and the run events that change a run's status. */
const handled = eventsOf(
  RunRequested,
  ScheduledRunSkipped,
  RunStarting,
  RunStarted,
  RunAppReady,
  RunFinalizing,
  RunCompleted,
  RunFailed,
  RunCancelRequested,
  RunCancelled,
  RunSkipped,
  RunSetUp,
  RunResultReported,
  RunTraceReported,
  RunStateReported,
);

/** The columns a new run row takes from RunRequested / ScheduledRunSkipped (what they share). */
function newRunRow(
  stored: { aggregate: { workspaceId: string; id: string } },
  d: Extract<JobEvent, { type: 'RunRequested' | 'ScheduledRunSkipped' }>['data'],
  at: Date,
) {
  return {
    id: d.runId,
    workspace_id: stored.aggregate.workspaceId,
    job_id: stored.aggregate.id,
    number: d.number,
    trigger: d.trigger,
    job_version: d.jobVersion,
    job_version_id: d.jobVersionId,
    entry_point: d.entryPoint,
    kind: d.kind,
    deployment_id: d.deployment?.id ?? null,
    deployment_version: d.deployment?.version ?? null,
    configuration_id: d.configuration?.id ?? null,
    configuration_version: d.configuration?.version ?? null,
    requested_by: d.requestedBy,
    created_at: at,
    updated_at: at,
    started_at: null,
    ended_at: null,
    duration_ms: null,
    exit_code: null,
    signal: null,
    failure_reason: null,
    message: null,
    stderr_tail: null,
    worker_id: null,
    host: null,
    pid: null,
    trigger_source: d.triggerSource ?? null,
    interval_start: 'interval' in d && d.interval ? new Date(d.interval.start) : null,
    interval_end: 'interval' in d && d.interval ? new Date(d.interval.end) : null,
    refresh: 'refresh' in d ? (d.refresh ?? false) : false,
    result: null,
  };
}

/**
 * Folds RunRequested (job streams) and the run events into `runs` (one row per run, every field
 * of the compatible RunResponse), `run_status_timeline` (every transition with time and reason)
 * and `run_telemetry` (the traces and pipeline states the run sent its beacon).
 */
export const runsProjection = defineProjection<ExecutionTables>({
  name: 'runs',
  tables: ['runs', 'run_status_timeline', 'run_telemetry'],
  canHandle: handled.types,
  async apply(db, events) {
    // New runs (requested or skipped) are inserted in multi-row statements, flushed before any
    // run event of the batch updates a row, and at the end.
    let pendingRuns: Insertable<RunRow>[] = [];
    let pendingTimeline: Insertable<TimelineRow>[] = [];
    const flush = async () => {
      for (let i = 0; i < pendingRuns.length; i += 500)
        await db
          .insertInto('runs')
          .values(pendingRuns.slice(i, i + 500))
          .onConflict((oc) => oc.column('id').doNothing())
          .execute();
      for (let i = 0; i < pendingTimeline.length; i += 1000)
        await db
          .insertInto('run_status_timeline')
          .values(pendingTimeline.slice(i, i + 1000))
          .onConflict((oc) => oc.columns(['run_id', 'seq', 'idx']).doNothing())
          .execute();
      pendingRuns = [];
      pendingTimeline = [];
    };
    for (const stored of handled.select(events)) {
      const at = new Date(stored.time);
      const workspaceId = stored.aggregate.workspaceId;
      if (stored.type === 'ScheduledRunSkipped') {
        // A fire that made no run: a run that is skipped from the start (never pending) and ended at once.
        const d = stored.data;
        pendingRuns.push({
          ...newRunRow(stored, d, at),
          status: 'skipped',
          profile: d.profile ?? '',
          timeout_seconds: null,
          ended_at: at,
          duration_ms: 0,
          message: d.reason,
        });
        pendingTimeline.push({
          run_id: d.runId,
          seq: stored.seq,
          idx: stored.index,
          workspace_id: workspaceId,
          status: 'skipped',
          at,
          reason: `scheduled fire at ${d.fireAt} skipped: ${d.reason}`.slice(0, 4000),
        });
        continue;
      }
      if (stored.type === 'RunRequested') {
        const d = stored.data;
        pendingRuns.push({
          ...newRunRow(stored, d, at),
          status: 'pending',
          profile: d.profile,
          timeout_seconds: d.timeoutSeconds,
        });
        pendingTimeline.push({
          run_id: d.runId,
          seq: stored.seq,
          idx: stored.index,
          workspace_id: workspaceId,
          status: 'pending',
          at,
          reason: `requested (${d.trigger}) by ${d.requestedBy}`,
        });
        continue;
      }
      await flush();
      const runId = stored.aggregate.id;
      if (stored.type === 'RunResultReported') {
        await db
          .updateTable('runs')
          .set({ result: JSON.stringify(stored.data), updated_at: at })
          .where('id', '=', runId)
          .execute();
        continue;
      }
      if (stored.type === 'RunTraceReported' || stored.type === 'RunStateReported') {
        await db
          .insertInto('run_telemetry')
          .values({
            run_id: runId,
            seq: stored.seq,
            idx: stored.index,
            workspace_id: workspaceId,
            kind: stored.type === 'RunTraceReported' ? 'trace' : 'state',
            summary: JSON.stringify(stored.data),
            at,
          })
          .onConflict((oc) => oc.columns(['run_id', 'seq', 'idx']).doNothing())
          .execute();
        continue;
      }
      const c = changeOf(stored, at);
      if (!c) continue;
      if (stored.type === 'RunSkipped') {
        // A skipped scheduled fire is a skipped run from its ScheduledRunSkipped already.
        const row = await db.selectFrom('runs').select('status').where('id', '=', runId).executeTakeFirst();
        if (row?.status === 'skipped') continue;
      }
      await db
        .updateTable('runs')
        .set({ ...c.set, status: c.status, updated_at: at })
        .where('id', '=', runId)
        .execute();
      await db
        .insertInto('run_status_timeline')
        .values({
          run_id: runId,
          seq: stored.seq,
          idx: stored.index,
          workspace_id: workspaceId,
          status: c.status,
          at: c.at,
          reason: c.reason.slice(0, 4000),
        })
        .onConflict((oc) => oc.columns(['run_id', 'seq', 'idx']).doNothing())
        .execute();
    }
    await flush();
  },
});

export { durationMs };
