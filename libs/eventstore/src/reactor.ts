import { startDurableConsumer, type DurableConsumer } from '#libs/nats';
import { TRACEPARENT } from '#libs/observability';
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
  /** The W3C trace context its commit carries (a `traceparent` header), when it was written in a trace. */
  traceparent?: string;
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

/** stop(): stops pulling, waits for the reaction in flight (its commit acked or nak'ed first); wake(): pull now. */
export type Reactor = DurableConsumer;

const NAME = /^[a-z][a-z0-9-]*$/;

/** The durable consumer name of a reactor on this store (unique per stream and subject prefix). */
export function reactorDurableName(store: EventStore, name: string): string {
  if (!NAME.test(name)) throw new Error(`reactor name ${JSON.stringify(name)} must match ${String(NAME)}`);
  const prefix = store.prefix.replace(/\.$/, '').replace(/[^A-Za-z0-9_-]/g, '_');
  return prefix ? `${prefix}_reactor_${name}` : `reactor_${name}`;
}

const message = (err: unknown) => (err instanceof Error ? err.message : String(err));

/**
 * A durable JetStream pull consumer on the event stream that turns events into commands (on
 * libs/nats's startDurableConsumer). Commits are decoded (upcast and validated by the store's
 * registry); each event of a wanted type is passed to `react`, in order; the commit is acked when
 * all reacted. A reaction that fails is nak'ed with a growing delay (redelivered: its commands must
 * be idempotent, see commandIdFor); a commit that cannot be decoded is logged and terminated, so it
 * never blocks the reactor. Replicas with the same name share the work (competing consumers).
 */
export function startReactor(opts: ReactorOptions): Promise<Reactor> {
  const { store, react } = opts;
  const log = opts.log ?? (() => undefined);
  const types = new Set(opts.eventTypes);
  const filterSubjects = opts.aggregateTypes?.length
    ? opts.aggregateTypes.map((aggregateType) => store.filterSubject({ aggregateType }))
    : [store.allSubjects];
  return startDurableConsumer({
    nc: store.nc,
    stream: store.stream,
    durable: reactorDurableName(store, opts.name),
    filterSubjects,
    label: `reactor ${opts.name}`,
    log,
    ...(opts.startAt ? { startAt: opts.startAt } : {}),
    ...(opts.capacity ? { capacity: opts.capacity } : {}),
    ...(opts.batch !== undefined ? { batch: opts.batch } : {}),
    ...(opts.ackWaitMs !== undefined ? { ackWaitMs: opts.ackWaitMs } : {}),
    ...(opts.pullExpiresMs !== undefined ? { pullExpiresMs: opts.pullExpiresMs } : {}),
    ...(opts.retryDelayMs !== undefined ? { retryDelayMs: opts.retryDelayMs } : {}),
    ...(opts.maxRetryDelayMs !== undefined ? { maxRetryDelayMs: opts.maxRetryDelayMs } : {}),
    handle: async (m) => {
      let commit: StoredCommit | undefined;
      try {
        commit = store.decodeMatching(m, types);
      } catch (err) {
        const reason = err instanceof EventSchemaError ? err.message : message(err);
        log(
          `reactor ${opts.name}: commit ${m.seq} on ${m.subject} cannot be decoded, passed over: ${reason}`,
        );
        return 'term';
      }
      if (!commit) return;
      const meta: CommitMeta = {
        commandId: commit.meta.commandId,
        actor: commit.meta.actor,
        correlationId: commit.meta.correlationId,
        ...(commit.meta.causationId !== undefined ? { causationId: commit.meta.causationId } : {}),
      };
      const traceparent = m.headers?.get(TRACEPARENT) || undefined;
      for (const e of commit.events) {
        await react({
          ...(traceparent ? { traceparent } : {}),
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
    },
  });
}
