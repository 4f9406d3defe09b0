import { AggregateTypes, type RunLogEvent } from '#libs/contracts';
import { CommandHandler, type CommitMeta, type EventStore } from '#libs/eventstore';
import type { SealMessage } from '#libs/run-logs';
import { runLogDecider, type RunLogCommand, type RunLogState } from './runlog.decider.js';

/** load → decide → append for the `runlog` aggregate (id = run id), through the lib's CommandHandler. */
export class RunLogCommands {
  private readonly handler: CommandHandler<RunLogState, RunLogCommand, RunLogEvent>;

  constructor(store: EventStore) {
    this.handler = new CommandHandler(store, runLogDecider, { maxRetries: 10 });
  }

  /** Records a run's seal (the first one wins; later ones decide nothing). */
  async seal(workspaceId: string, runId: string, seal: SealMessage, meta: CommitMeta): Promise<void> {
    await this.handler.handle(
      { workspaceId, type: AggregateTypes.runlog, id: runId },
      {
        type: 'SealRunLog',
        runId,
        lineCount: seal.lineCount,
        bytes: seal.bytes,
        sealedBy: seal.by,
        sealedAt: new Date(seal.ts).toISOString(),
      },
      meta,
    );
  }
}
