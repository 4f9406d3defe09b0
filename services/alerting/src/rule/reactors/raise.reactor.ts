import type { Kysely } from 'kysely';
import { AggregateTypes, RunCompleted, RunFailed, ScheduledRunSkipped } from '#libs/contracts';
import { commandIdFor, reactionMeta, startReactor, type EventStore, type Reactor } from '#libs/eventstore';
import { alertIdFor } from '../../alert-id.js';
import type { AlertingTables } from '../../migrations/index.js';
import { jobName, jobOfRun } from '../../runs/run-jobs.queries.js';
import type { RunOutcome } from '../rule.decider.js';
import type { AlertRuleCommands } from '../rule.handler.js';
import { rulesWatching } from '../read-models/rules.queries.js';

export const RAISE_REACTOR = 'alerting-raise';

/** What marks a skip by the overlap policy in ScheduledRunSkipped's reason (services/scheduling's job decider). */
const OVERLAP = /overlap policy/;

export interface RaiseReactorDeps {
  store: EventStore;
  db: Kysely<AlertingTables>;
  rules: AlertRuleCommands;
  /** Resolves once the `alert_runs` projection reached this stream sequence. */
  waitForRuns: (seq: number) => Promise<void>;
  log?: (msg: string) => void;
}

/**
 * A run ended (RunCompleted, RunFailed on the run's stream; ScheduledRunSkipped on the job's) →
 * NoteRunOutcome on every enabled rule watching its job. The run's events do not name its job:
 * it is looked up in `alert_runs` (folded from RunRequested, earlier in the stream; when that
 * projection is behind it is awaited up to the event). Each rule decides (streak, conditions,
 * dedupe per run, rate limit) and records AlertRaised; the deliver reactor sends it. Idempotent:
 * the command id comes from the event and the rule.
 */
export function startRaiseReactor(deps: RaiseReactorDeps): Promise<Reactor> {
  return startReactor({
    name: RAISE_REACTOR,
    store: deps.store,
    eventTypes: ['RunCompleted', 'RunFailed', 'ScheduledRunSkipped'],
    aggregateTypes: [AggregateTypes.run, AggregateTypes.job],
    // New rules watch new runs: a first start does not alert on the history.
    startAt: 'new',
    retryDelayMs: 200,
    maxRetryDelayMs: 5_000,
    ...(deps.log ? { log: deps.log } : {}),
    react: async (event) => {
      const { workspaceId } = event.ref;
      let runId: string;
      let jobId: string;
      let name: string | null;
      let runNumber: number | null;
      let outcome: RunOutcome;
      let message: string;
      let at = event.time;
      if (event.type === 'ScheduledRunSkipped') {
        const d = ScheduledRunSkipped.schema.parse(event.data);
        runId = d.runId;
        jobId = event.ref.id;
        runNumber = d.number;
        name = await jobName(deps.db, workspaceId, jobId);
        outcome = { kind: 'skipped', byOverlap: OVERLAP.test(d.reason) };
        message = d.reason;
      } else {
        runId = event.ref.id;
        let job = await jobOfRun(deps.db, workspaceId, runId);
        if (!job) {
          await deps.waitForRuns(event.seq);
          job = await jobOfRun(deps.db, workspaceId, runId);
        }
        if (!job) return;
        ({ jobId, jobName: name, runNumber } = job);
        if (event.type === 'RunFailed') {
          const d = RunFailed.schema.parse(event.data);
          outcome = { kind: 'failed', reason: d.reason };
          message = d.message;
          at = d.endedAt ?? event.time;
        } else {
          RunCompleted.schema.parse(event.data);
          outcome = { kind: 'completed' };
          message = 'completed';
        }
      }
      const rules = await rulesWatching(deps.db, workspaceId, jobId);
      for (const ruleId of rules) {
        await deps.rules.note(
          workspaceId,
          ruleId,
          {
            type: 'NoteRunOutcome',
            alertId: alertIdFor(ruleId, runId),
            runId,
            jobId,
            jobName: name,
            runNumber,
            outcome,
            message,
            at: new Date(Math.max(Date.parse(at), 0)).toISOString(),
          },
          {
            ...reactionMeta(RAISE_REACTOR, event, 'alerting'),
            commandId: `${commandIdFor(RAISE_REACTOR, event)}:${ruleId}`,
          },
        );
      }
    },
  });
}
