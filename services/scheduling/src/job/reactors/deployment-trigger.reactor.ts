import type { Kysely } from 'kysely';
import { AggregateTypes } from '#libs/contracts';
import { commandIdFor, startReactor, type EventStore, type Reactor } from '#libs/eventstore';
import { jobsTriggeredBy, type JobsReadModel } from '../read-models/jobs.queries.js';

export const DEPLOYMENT_TRIGGER_REACTOR = 'scheduling-deployment-trigger';

/** What the reactor needs: a run of a manifest job for a trigger (ManifestJobs.requestRun). */
export interface DeploymentTriggerTarget {
  requestRun(
    workspaceId: string,
    jobId: string,
    triggerSource: string,
    commandId: string,
    actor: string,
  ): Promise<{ status: string; reason: string | null }>;
}

/**
 * `deployment:` triggers (docs/manifest.md): a new deployment of a workspace (DeploymentCreated)
 * requests a run of each of its non-archived jobs with that trigger (found in scheduling's own
 * `jobs` read model). A new durable starts at new events (no runs for the deployments of the
 * past). Idempotent: the command id comes from the event and the job.
 */
export function startDeploymentTriggerReactor(deps: {
  store: EventStore;
  db: Kysely<JobsReadModel>;
  jobs: DeploymentTriggerTarget;
  log?: (msg: string) => void;
}): Promise<Reactor> {
  return startReactor({
    name: DEPLOYMENT_TRIGGER_REACTOR,
    store: deps.store,
    eventTypes: ['DeploymentCreated'],
    aggregateTypes: [AggregateTypes.deployment],
    startAt: 'new',
    ...(deps.log ? { log: deps.log } : {}),
    react: async (event) => {
      const ws = event.ref.workspaceId;
      for (const job of await jobsTriggeredBy(deps.db, ws, 'deployment:')) {
        const r = await deps.jobs
          .requestRun(
            ws,
            job.id,
            'deployment:',
            `${commandIdFor(DEPLOYMENT_TRIGGER_REACTOR, event)}:${job.id}`,
            'scheduler',
          )
          .catch((err: unknown) => ({ status: 'refused', reason: (err as Error).message }));
        if (r.status !== 'triggered') deps.log?.(`deployment: → ${job.name}: ${r.status} (${r.reason})`);
      }
    },
  });
}
