import { AckPolicy, DeliverPolicy, JetStreamApiError } from '@nats-io/jetstream';
import { reactorDurableName, type EventStore } from '#libs/eventstore';

/** The durable consumer the workers claimed runs and recorded skips through before the reactors. */
export const LEGACY_RUN_CONSUMER = 'run_workers';

const NOT_FOUND = 10014;

async function infoOf(store: EventStore, name: string) {
  const jsm = await store.jsm();
  try {
    return await jsm.consumers.info(store.stream, name);
  } catch (err) {
    if (err instanceof JetStreamApiError && err.code === NOT_FOUND) return undefined;
    throw err;
  }
}

/**
 * An installation that ran before the reactors has the workers' old durable `run_workers` (job
 * streams, RunRequested and ScheduledRunSkipped). A reactor replacing it starts where it stood
 * (after its ack floor), not at the start of the stream: requests of runs archived long ago would
 * otherwise find an empty run aggregate and run again. The old consumer is removed once both
 * reactors that replace it have their own.
 */
export async function adoptLegacyRunConsumer(
  store: EventStore,
  reactor: string,
  other: string,
  log: (m: string) => void,
): Promise<void> {
  const legacy = await infoOf(store, LEGACY_RUN_CONSUMER);
  if (!legacy) return;
  const durable = reactorDurableName(store, reactor);
  if (!(await infoOf(store, durable))) {
    const jsm = await store.jsm();
    await jsm.consumers
      .add(store.stream, {
        durable_name: durable,
        ack_policy: AckPolicy.Explicit,
        deliver_policy: DeliverPolicy.StartSequence,
        opt_start_seq: legacy.ack_floor.stream_seq + 1,
        filter_subject: store.filterSubject({ aggregateType: 'job' }),
        ack_wait: 60_000_000_000,
        max_ack_pending: 10_000,
        max_deliver: -1,
        inactive_threshold: 0,
      })
      .catch(async (err: unknown) => {
        if (!(await infoOf(store, durable))) throw err; // not another replica's at the same moment
      });
    log(
      `reactor ${reactor} continues after stream sequence ${legacy.ack_floor.stream_seq} (${LEGACY_RUN_CONSUMER})`,
    );
  }
  if (await infoOf(store, reactorDurableName(store, other))) {
    const jsm = await store.jsm();
    await jsm.consumers.delete(store.stream, LEGACY_RUN_CONSUMER).catch(() => undefined);
  }
}
