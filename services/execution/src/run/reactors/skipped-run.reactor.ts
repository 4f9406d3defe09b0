import {
  Inject,
  Injectable,
  Logger,
  type OnApplicationBootstrap,
  type OnApplicationShutdown,
} from '@nestjs/common';
import { AggregateTypes, ScheduledRunSkipped } from '#libs/contracts';
import { reactionMeta, startReactor, type EventStore, type Reactor } from '#libs/eventstore';
import { SERVICE_CONTEXT, type ServiceContext } from '#libs/service-host';
import { RunAggregates } from '../run.handler.js';
import { adoptLegacyRunConsumer } from './legacy-consumer.js';

export const SKIPPED_RUNS_REACTOR = 'skipped-runs';
/** The workers' reactor (worker/run-claimer.ts), which replaces the same legacy consumer. */
const RUN_CLAIMS_REACTOR = 'run-workers';

/**
 * A scheduled fire the job recorded as skipped (docs/scheduling.md): the run aggregate gets its
 * RunSkipped too, so the run ends like any other (the logs service seals its empty log at once).
 * ScheduledRunSkipped → SkipRun, the command id from the event (once, whatever the redeliveries).
 */
export async function startSkippedRunReactor(store: EventStore, log: (m: string) => void): Promise<Reactor> {
  const runs = new RunAggregates(store);
  await adoptLegacyRunConsumer(store, SKIPPED_RUNS_REACTOR, RUN_CLAIMS_REACTOR, log);
  return startReactor({
    name: SKIPPED_RUNS_REACTOR,
    store,
    eventTypes: [ScheduledRunSkipped.type],
    aggregateTypes: [AggregateTypes.job],
    log,
    react: async (e) => {
      const d = ScheduledRunSkipped.schema.parse(e.data);
      await runs.handle(
        e.ref.workspaceId,
        d.runId,
        { type: 'SkipRun', reason: d.reason },
        reactionMeta(SKIPPED_RUNS_REACTOR, e),
      );
    },
  });
}

@Injectable()
export class SkippedRunReactor implements OnApplicationBootstrap, OnApplicationShutdown {
  private reactor: Reactor | undefined;
  private readonly logger = new Logger(SKIPPED_RUNS_REACTOR);

  constructor(@Inject(SERVICE_CONTEXT) private readonly ctx: ServiceContext) {}

  async onApplicationBootstrap(): Promise<void> {
    this.reactor = await startSkippedRunReactor(this.ctx.store, (m) => this.logger.warn(m));
  }

  async onApplicationShutdown(): Promise<void> {
    await this.reactor?.stop();
  }
}
