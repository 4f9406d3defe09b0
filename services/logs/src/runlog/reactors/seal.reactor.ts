import { jetstream } from '@nats-io/jetstream';
import { AggregateTypes } from '#libs/contracts';
import { reactionMeta, startReactor, type EventStore, type Reactor } from '#libs/eventstore';
import type { NatsConnection } from '#libs/nats';
import { runSealSubject, type LogsLocation, type RunLogReader, type SealMessage } from '#libs/run-logs';
import type { RunLogCommands } from '../runlog.handler.js';

export const SEAL_REACTOR = 'logs-seal';

/** The run events that end a run: its log is complete once its worker sealed it (or the logs service did). */
export const RUN_END_EVENTS: readonly string[] = ['RunCompleted', 'RunFailed', 'RunCancelled', 'RunSkipped'];

/** Marks the retry of a run whose worker's seal is not there yet (logged at debug level). */
export const NOT_SEALED_YET = 'not sealed yet';

export interface SealReactorDeps {
  nats: NatsConnection;
  store: EventStore;
  loc: LogsLocation;
  reader: RunLogReader;
  runLogs: RunLogCommands;
  /** A run ended this long ago without a seal in the LOGS stream is sealed by the logs service (5 s). */
  graceMs?: number;
  log?: (msg: string) => void;
}

/**
 * Makes every run's log complete and says so, reacting to the run's end (its terminal event):
 * - the worker sealed the log (`logs.<ws>.<run>.end` in the LOGS stream, published before the
 *   run's end): RunLogsSealed is recorded on the run's `runlog` aggregate with its final count;
 * - no seal yet: the reaction is retried (the worker may still be sealing) until `graceMs` after
 *   the end was first seen; then (its worker was lost, or it never started) the logs service seals
 *   it with the lines that are there (`by: "logs"`, the same message id as a worker's seal, so a
 *   late one is dropped as a duplicate) and records that. A skipped run never had a worker: at once.
 * Any number of logs service replicas share the events; a redelivery finds the original command.
 */
export function startSealReactor(deps: SealReactorDeps): Promise<Reactor> {
  const graceMs = deps.graceMs ?? 5_000;
  const js = jetstream(deps.nats);
  /** When this process first saw a run's end without a seal (cleared once sealed). */
  const waiting = new Map<string, number>();
  return startReactor({
    name: SEAL_REACTOR,
    store: deps.store,
    eventTypes: RUN_END_EVENTS,
    aggregateTypes: [AggregateTypes.run],
    // Retries at 1/7, 3/7 and 7/7 of the grace: the last one at the grace.
    retryDelayMs: Math.max(10, Math.round(graceMs / 7)),
    ...(deps.log ? { log: deps.log } : {}),
    react: async (event) => {
      const { workspaceId, id: runId } = event.ref;
      // Sealed before (a redelivery; every old run when the reactor's consumer is new): nothing to add.
      if (await deps.runLogs.isSealed(workspaceId, runId)) return void waiting.delete(runId);
      const stats = await deps.reader.stats(workspaceId, runId);
      let seal = stats.seal;
      if (!seal) {
        const now = Date.now();
        const since = waiting.get(runId) ?? now;
        if (!waiting.has(runId)) {
          if (waiting.size >= 100_000) waiting.clear();
          waiting.set(runId, now);
        }
        if (event.type !== 'RunSkipped' && now - since < graceMs)
          throw new Error(`log of run ${runId} ${NOT_SEALED_YET}: waiting for its worker's seal`);
        const mine: SealMessage = {
          type: 'end',
          lineCount: stats.lineCount,
          bytes: stats.bytes,
          ts: now,
          by: 'logs',
        };
        const ack = await js.publish(
          runSealSubject(deps.loc.subjectPrefix, workspaceId, runId),
          JSON.stringify(mine),
          { msgID: `${runId}:end` },
        );
        // A worker's seal that came meanwhile is the one in the stream: record that one.
        seal = ack.duplicate ? ((await deps.reader.stats(workspaceId, runId)).seal ?? mine) : mine;
      }
      await deps.runLogs.seal(workspaceId, runId, seal, reactionMeta(SEAL_REACTOR, event, 'logs'));
      waiting.delete(runId);
    },
  });
}
