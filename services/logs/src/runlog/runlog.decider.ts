import { DomainError, type Decider } from '#libs/eventstore';
import type { RunLogEvent } from '#libs/contracts';

/** Commands of the `runlog` aggregate (id = run id). */
export type RunLogCommand = {
  type: 'SealRunLog';
  runId: string;
  lineCount: number;
  bytes: number;
  sealedBy: 'worker' | 'logs';
  sealedAt: string;
};

export interface RunLogState {
  sealed: boolean;
  lineCount: number;
}

/**
 * A run's log is sealed once: the first seal wins, later ones (a retried delivery, the logs
 * service sealing a run whose worker's own seal arrives late) decide nothing.
 */
export function decideSealRunLog(command: RunLogCommand, state: RunLogState): RunLogEvent[] {
  if (state.sealed) return [];
  if (command.lineCount < 0 || command.bytes < 0)
    throw new DomainError(`invalid seal of run ${command.runId}: negative counts`);
  const { runId, lineCount, bytes, sealedBy, sealedAt } = command;
  return [{ type: 'RunLogsSealed', data: { runId, lineCount, bytes, sealedBy, sealedAt } }];
}

export const runLogDecider: Decider<RunLogState, RunLogCommand, RunLogEvent> = {
  initialState: () => ({ sealed: false, lineCount: 0 }),
  evolve: (state, event) => {
    switch (event.type) {
      case 'RunLogsSealed':
        return { sealed: true, lineCount: event.data.lineCount };
      default: {
        const never: never = event.type;
        return never;
      }
    }
  },
  decide: (command, state) => {
    switch (command.type) {
      case 'SealRunLog':
        return decideSealRunLog(command, state);
      default: {
        const never: never = command.type;
        throw new Error(`unknown runlog command ${String(never)}`);
      }
    }
  },
};
