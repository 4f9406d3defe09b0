import type { StoredCommit } from '#libs/eventstore';
import { eventsOf } from '#libs/projections';
import {
  DeploymentCreated,
  JobCreated,
  JobDeleted,
  JobUpdated,
  RunCancelled,
  RunCompleted,
  RunFailed,
  RunRequested,
  RunSkipped,
  RunStarted,
  RunStarting,
  ScheduledRunSkipped,
} from '#libs/contracts';
import type { DashboardMessage, RunStatus } from '../../../../libs/client/src/dashboard.js';

const live = eventsOf(
  RunRequested,
  ScheduledRunSkipped,
  RunStarting,
  RunStarted,
  RunCompleted,
  RunFailed,
  RunCancelled,
  RunSkipped,
  JobCreated,
  JobUpdated,
  JobDeleted,
  DeploymentCreated,
);

/** The public event types the dashboard's live updates are made of (nothing else is decoded). */
export const LIVE_EVENT_TYPES: readonly string[] = live.types;

type RunStatusMessage = Extract<DashboardMessage, { type: 'run.status' }>;

/**
 * The dashboard messages of one commit: small, typed, and made only of ids, statuses, times and
 * the run's failure reason (which the runs API shows too): never payloads, secrets or logs.
 * `jobOfRun` tells the job of a run whose event does not name it (null: unknown).
 */
export function liveMessagesOf(
  commit: StoredCommit,
  jobOfRun: (runId: string) => string | null,
): DashboardMessage[] {
  const out: DashboardMessage[] = [];
  const run = (
    runId: string,
    jobId: string | null,
    status: RunStatus,
    at: string,
    reason: string | null = null,
  ): RunStatusMessage => ({ type: 'run.status', run_id: runId, job_id: jobId, status, at, reason });
  for (const e of live.select(commit.events)) {
    const at = e.time;
    const agg = commit.aggregate.id;
    switch (e.type) {
      case 'RunRequested':
        out.push(run(e.data.runId, agg, 'pending', at));
        break;
      case 'ScheduledRunSkipped':
        out.push(run(e.data.runId, agg, 'skipped', at, e.data.reason));
        break;
      case 'RunStarting':
        out.push(run(agg, e.data.jobId, 'starting', at));
        break;
      case 'RunStarted':
        out.push(run(agg, jobOfRun(agg), 'running', at));
        break;
      case 'RunCompleted':
        out.push(run(agg, jobOfRun(agg), 'completed', at));
        break;
      case 'RunFailed':
        out.push(run(agg, jobOfRun(agg), 'failed', at, `${e.data.reason}: ${e.data.message}`.slice(0, 2000)));
        break;
      case 'RunCancelled':
        out.push(run(agg, jobOfRun(agg), 'cancelled', at, e.data.message || null));
        break;
      case 'RunSkipped':
        out.push(run(agg, jobOfRun(agg), 'skipped', at, e.data.reason));
        break;
      case 'JobCreated':
        out.push({ type: 'job.changed', job_id: agg, change: 'created', at });
        break;
      case 'JobUpdated':
        out.push({ type: 'job.changed', job_id: agg, change: 'updated', at });
        break;
      case 'JobDeleted':
        out.push({ type: 'job.changed', job_id: agg, change: 'deleted', at });
        break;
      case 'DeploymentCreated':
        out.push({
          type: 'deployment.created',
          deployment_id: e.data.deploymentId,
          version: e.data.version,
          at,
        });
        break;
    }
  }
  return out;
}
