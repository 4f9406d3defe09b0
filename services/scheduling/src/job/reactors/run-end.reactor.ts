import type { Kysely } from 'kysely';
import { AggregateTypes } from '#libs/contracts';
import { commandIdFor, startReactor, type EventStore, type Reactor } from '#libs/eventstore';
import type { SchedulingTables } from '../../migrations/index.js';
import { jobOfRun } from '../read-models/job-runs.queries.js';

/** The run events that end a run the job counts as active, and the status each one means. */
export const RUN_END_STATUS: Readonly<Record<string, string>> = {
  RunCompleted: 'completed',
  RunFailed: 'failed',
  RunCancelled: 'cancelled',
};

export const RUN_END_REACTOR = 'scheduling-run-end';

/** What the reactor needs from the job aggregate. */
export interface RunEndTarget {
  noteRunEnded(
    workspaceId: string,
    jobId: string,
    runId: string,
    status: string,
    commandId: string,
  ): Promise<void>;
}

export interface RunEndReactorDeps {
  store: EventStore;
  db: Kysely<SchedulingTables>;
  jobs: RunEndTarget;
  /** Resolves once the `job_runs` projection reached this stream sequence. */
  waitForJobRuns: (seq: number) => Promise<void>;
  log?: (msg: string) => void;
}

/**
 * A run of a job ended (its run's terminal event) → NoteRunEnded on the job, so the job knows
 * which runs are active when it applies the overlap policy, and requests a queued fire. The run's
 * events do not name its job: it is looked up in `job_runs` (folded from RunRequested, which comes
 * earlier in the stream; when that projection is behind, it is awaited up to the event). A run of
 * no job (none requested it) is passed over. Idempotent: the command id comes from the event.
 */
export function startRunEndReactor(deps: RunEndReactorDeps): Promise<Reactor> {
  return startReactor({
    name: RUN_END_REACTOR,
    store: deps.store,
    eventTypes: Object.keys(RUN_END_STATUS),
    aggregateTypes: [AggregateTypes.run],
    ...(deps.log ? { log: deps.log } : {}),
    react: async (event) => {
      const status = RUN_END_STATUS[event.type];
      if (!status) return;
      const { workspaceId, id: runId } = event.ref;
      let jobId = await jobOfRun(deps.db, workspaceId, runId);
      if (jobId === undefined) {
        await deps.waitForJobRuns(event.seq);
        jobId = await jobOfRun(deps.db, workspaceId, runId);
      }
      if (jobId === undefined) return;
      await deps.jobs.noteRunEnded(workspaceId, jobId, runId, status, commandIdFor(RUN_END_REACTOR, event));
    },
  });
}
