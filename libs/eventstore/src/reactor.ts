import {
  AckPolicy,
  DeliverPolicy,
  JetStreamApiError,
  type ConsumerConfig,
  type ConsumerMessages,
  type JsMsg,
} from '@nats-io/jetstream';
import type { AggregateRef, CommitMeta, StoredCommit } from './envelope.js';
import { EventSchemaError } from './errors.js';
import type { EventStore } from './event-store.js';

/** One event a reactor reacts to, with where it was stored and the commit it came with. */
export interface ReactorEvent {
  type: string;
  data: unknown;
  /** The aggregate the event belongs to. */
  ref: AggregateRef;
  /** Stream sequence of its commit. */
  seq: number;
  /** Position inside its commit. */
  index: number;
  /** The meta of the commit that holds it (correlation id: carried on to the reaction's command). */
  meta: CommitMeta;
  /** The event's identity (`<seq>:<index>`): the causation id of the commands it causes. */
  causationId: string;
  /** When its commit was stored (ISO). */
  time: string;
}

/**
 * The command id of the command a reactor sends for an event: the same for every delivery of the
 * event, to every replica, so a redelivered or competing reaction finds the original result.
 */
export function commandIdFor(reactor: string, event: ReactorEvent): string {
  return `${reactor}:${event.causationId}`;
}

/** The meta of a reaction's command: its command id, the event as cause, the same correlation. */
export function reactionMeta(reactor: string, event: ReactorEvent, actor = `reactor:${reactor}`): CommitMeta {
  return {
    commandId: commandIdFor(reactor, event),
    actor,
    correlationId: event.meta.correlationId ?? event.meta.commandId,
    causationId: event.causationId,
  };
}

export interface ReactorOptions {
  /** Durable name, /^[a-z][a-z0-9-]*$/ (the consumer is named per stream and subject prefix by the lib). */
  name: string;
  store: EventStore;
  /** The event types it reacts to; commits holding none of them are acked and skipped. */
  eventTypes: readonly string[];
  /** Narrows the consumer's filter subjects (evt.*.<type>.*). Default: every commit. */
  aggregateTypes?: readonly string[];
  react: (event: ReactorEvent) => Promise<void>;
  /** Where a NEW durable starts (default 'all': the first commit of the stream). */
  startAt?: 'all' | 'new';
  /** Pull only while > 0, at most that many commits at once (back-pressure, e.g. worker slots). */
  capacity?: () => number;
  log?: (msg: string) => void;
  /** Most commits pulled at once (default 64). */
  batch?: number;
  /** How long the server waits for an ack before redelivering (default 60 s; extended while reacting). */
  ackWaitMs?: number;
  /** Lifetime of one pull request (default 5 s): a pull left on a lost consumer leader ends then. */
  pullExpiresMs?: number;
  /** First delay of a failed reaction's redelivery; doubles per delivery up to `maxRetryDelayMs` (default 1 s). */
  retryDelayMs?: number;
  /** Longest delay of a redelivery (default 30 s; = retryDelayMs: a fixed delay). */
  maxRetryDelayMs?: number;
}

export interface Reactor {
  /** Stops pulling; waits for the reaction in flight (its commit is acked or nak'ed first). */
  stop(): Promise<void>;
  /** Pulls again at once (capacity went up), instead of at the next capacity check. */
  wake(): void;
}

const NAME = /^[a-z][a-z0-9-]*$/;
const CONSUMER_NOT_FOUND = 10014;
const CAPACITY_CHECK_MS = 200;

/** The durable consumer name of a reactor on this store (unique per stream and subject prefix). */
export function reactorDurableName(store: EventStore, name: string): string {
  if (!NAME.test(name)) throw new Error(`reactor name ${JSON.stringify(name)} must match ${String(NAME)}`);
  const prefix = store.prefix.replace(/\.$/, '').replace(/[^A-Za-z0-9_-]/g, '_');
  return prefix ? `${prefix}_reactor_${name}` : `reactor_${name}`;
}

/** An ack, nak or term that fails (the connection is gone) changes nothing: the server redelivers. */
function settle(f: () => void): void {
  try {
    f();
  } catch {
    // redelivered after ack_wait
  }
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const message = (err: unknown) => (err instanceof Error ? err.message : String(err));

/**
 * A durable JetStream pull consumer on the event stream that turns events into commands. Commits
 * are decoded (upcast and validated by the store's registry); each event of a wanted type is passed
 * to `react`, in order; the commit is acked when all reacted. A reaction that fails is nak'ed with a
 * growing delay (redelivered: its commands must be idempotent, see commandIdFor); a commit that
 * cannot be decoded is logged and terminated, so it never blocks the reactor. Replicas with the same
 * name share the work (competing consumers). Errors of NATS itself (a leader election, a
 * reconnect, the consumer removed) end the current pull; the reactor pulls again after a second.
 */
export async function startReactor(opts: ReactorOptions): Promise<Reactor> {
  const { store, react } = opts;
  const durable = reactorDurableName(store, opts.name);
  const log = opts.log ?? (() => undefined);
  const types = new Set(opts.eventTypes);
  const batch = opts.batch ?? 64;
  const ackWaitMs = opts.ackWaitMs ?? 60_000;
  const retryDelayMs = opts.retryDelayMs ?? 1_000;
  const maxRetryDelayMs = opts.maxRetryDelayMs ?? 30_000;
  const filters = opts.aggregateTypes?.length
    ? opts.aggregateTypes.map((aggregateType) => store.filterSubject({ aggregateType }))
    : [store.allSubjects];
  const filter: Pick<ConsumerConfig, 'filter_subject' | 'filter_subjects'> =
    filters.length === 1 ? { filter_subject: filters[0] } : { filter_subjects: filters };

  const sameFilter = (c: ConsumerConfig) => {
    const has = c.filter_subjects?.length ? c.filter_subjects : c.filter_subject ? [c.filter_subject] : [];
    return has.length === filters.length && filters.every((f) => has.includes(f));
  };

  const ensureConsumer = async (): Promise<void> => {
    const jsm = await store.jsm();
    try {
      const ci = await jsm.consumers.info(store.stream, durable);
      if (sameFilter(ci.config)) return;
      // The reactor's event types moved to other aggregates: same position, new filter.
      await jsm.consumers.update(store.stream, durable, { ...filter });
      return;
    } catch (err) {
      if (!(err instanceof JetStreamApiError && err.code === CONSUMER_NOT_FOUND)) throw err;
    }
    try {
      await jsm.consumers.add(store.stream, {
        durable_name: durable,
        ack_policy: AckPolicy.Explicit,
        deliver_policy: opts.startAt === 'new' ? DeliverPolicy.New : DeliverPolicy.All,
        ...filter,
        ack_wait: ackWaitMs * 1_000_000,
        max_ack_pending: 10_000,
        max_deliver: -1,
        inactive_threshold: 0,
      });
    } catch (err) {
      // Another replica created it at the same moment.
      await jsm.consumers.info(store.stream, durable).catch(() => {
        throw err;
      });
    }
  };

  let stopping = false;
  let pulling: ConsumerMessages | undefined;
  let wakeUp: (() => void) | undefined;
  const wake = () => {
    const w = wakeUp;
    wakeUp = undefined;
    w?.();
  };
  const idle = (ms: number) =>
    new Promise<void>((resolve) => {
      const t = setTimeout(() => wake(), ms);
      wakeUp = () => {
        clearTimeout(t);
        resolve();
      };
    });

  /** Reacts to one commit's wanted events; acks it, or naks it for a later retry. */
  const onMessage = async (m: JsMsg): Promise<void> => {
    let commit: StoredCommit | undefined;
    try {
      commit = store.decodeMatching(m, types);
    } catch (err) {
      const reason = err instanceof EventSchemaError ? err.message : message(err);
      log(`reactor ${opts.name}: commit ${m.seq} on ${m.subject} cannot be decoded, passed over: ${reason}`);
      settle(() => m.term(reason.slice(0, 200)));
      return;
    }
    if (!commit) {
      settle(() => m.ack());
      return;
    }
    const meta: CommitMeta = {
      commandId: commit.meta.commandId,
      actor: commit.meta.actor,
      correlationId: commit.meta.correlationId,
      ...(commit.meta.causationId !== undefined ? { causationId: commit.meta.causationId } : {}),
    };
    // A long reaction keeps its commit from being redelivered to a competing replica meanwhile.
    const working = setInterval(() => settle(() => m.working()), Math.max(1_000, ackWaitMs / 3));
    try {
      for (const e of commit.events) {
        await react({
          type: e.type,
          data: e.data,
          ref: commit.aggregate,
          seq: e.seq,
          index: e.index,
          meta,
          causationId: `${e.seq}:${e.index}`,
          time: commit.meta.time,
        });
      }
      settle(() => m.ack());
    } catch (err) {
      const delay = Math.min(maxRetryDelayMs, retryDelayMs * 2 ** Math.min(10, m.info.deliveryCount - 1));
      log(
        `reactor ${opts.name}: reacting to commit ${m.seq} failed (retried in ${delay} ms): ${message(err)}`,
      );
      settle(() => m.nak(delay));
    } finally {
      clearInterval(working);
    }
  };

  const loop = async (): Promise<void> => {
    while (!stopping && !store.nc.isClosed()) {
      const free = opts.capacity ? Math.min(batch, Math.floor(opts.capacity())) : batch;
      if (free <= 0) {
        await idle(CAPACITY_CHECK_MS);
        continue;
      }
      try {
        const consumer = await store.js.consumers.get(store.stream, durable);
        const messages = await consumer.fetch({ max_messages: free, expires: opts.pullExpiresMs ?? 5_000 });
        pulling = messages;
        if (stopping) messages.stop();
        for await (const m of messages) {
          // Pulled but not to be reacted to here: back to the consumer for a replica (or later).
          if (stopping) settle(() => m.nak());
          else if (opts.capacity && opts.capacity() <= 0) settle(() => m.nak(CAPACITY_CHECK_MS));
          else await onMessage(m);
        }
      } catch (err) {
        if (stopping || store.nc.isClosed()) break;
        log(`reactor ${opts.name}: pulling: ${message(err)}`);
        await sleep(1_000);
        await ensureConsumer().catch((e: unknown) => log(`reactor ${opts.name}: consumer: ${message(e)}`));
      } finally {
        pulling = undefined;
      }
    }
  };

  await ensureConsumer();
  const running = loop();
  return {
    wake,
    async stop() {
      stopping = true;
      pulling?.stop();
      wake();
      await running;
    },
  };
}
