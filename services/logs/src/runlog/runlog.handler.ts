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

  /** Whether the run's log is sealed (recorded) already. */
  async isSealed(workspaceId: string, runId: string): Promise<boolean> {
    return (await this.handler.load(this.ref(workspaceId, runId))).state.sealed;
  }

  private ref(workspaceId: string, runId: string) {
    return { workspaceId, type: AggregateTypes.runlog, id: runId };
  }

  /** Records a run's seal (the first one wins; later ones decide nothing). */
  async seal(workspaceId: string, runId: string, seal: SealMessage, meta: CommitMeta): Promise<void> {
    await this.handler.handle(
      this.ref(workspaceId, runId),
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
