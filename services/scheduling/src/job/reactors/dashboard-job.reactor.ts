import { AggregateTypes, WorkspaceCreated } from '#libs/contracts';
import { commandIdFor, startReactor, type EventStore, type Reactor } from '#libs/eventstore';

export const DASHBOARD_JOB_REACTOR = 'scheduling-dashboard-job';

/** What the reactor needs from the job aggregate. */
export interface DashboardJobTarget {
  ensureDashboardJob(workspaceId: string, commandId: string): Promise<boolean>;
}

/**
 * A workspace was created → its interactive `dashboard` job (entry point `runway:dashboard`, dlt's
 * pipeline dashboard; docs/interactive.md). A durable consumer from the start of the stream: on the
 * first start after an upgrade every existing workspace gets its job too. Idempotent: the command id
 * comes from the event, and the job aggregate creates a job of that name only if none ever existed.
 */
export function startDashboardJobReactor(deps: {
  store: EventStore;
  jobs: DashboardJobTarget;
  log?: (msg: string) => void;
}): Promise<Reactor> {
  return startReactor({
    name: DASHBOARD_JOB_REACTOR,
    store: deps.store,
    eventTypes: [WorkspaceCreated.type],
    aggregateTypes: [AggregateTypes.workspace],
    ...(deps.log ? { log: deps.log } : {}),
    react: async (event) => {
      const ws = WorkspaceCreated.schema.parse(event.data).workspaceId;
      await deps.jobs.ensureDashboardJob(ws, commandIdFor(DASHBOARD_JOB_REACTOR, event));
    },
  });
}
