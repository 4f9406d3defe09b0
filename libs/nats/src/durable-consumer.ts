import {
  AckPolicy,
  DeliverPolicy,
  JetStreamApiError,
  jetstream,
  jetstreamManager,
  type ConsumerConfig,
  type ConsumerMessages,
  type JetStreamManager,
  type JsMsg,
} from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';

export interface DurableConsumerOptions {
  nc: NatsConnection;
  stream: string;
  /** Durable name; replicas with the same name share the messages (competing consumers). */
  durable: string;
  filterSubjects: readonly string[];
  /** Where a NEW durable starts (default 'all'). */
  startAt?: 'all' | 'new';
  /**
   * Handles one message, in order. Resolves: acked. Resolves 'term': terminated (never delivered
   * again: garbage). Throws: nak'ed with a delay growing per delivery (redelivered later).
   */
  handle: (m: JsMsg) => Promise<void | 'term'>;
  /** Pull only while > 0, at most that many messages at once (back-pressure, e.g. worker slots). */
  capacity?: () => number;
  /** Most messages pulled at once (default 64). */
  batch?: number;
  /** How long the server waits for an ack before redelivering (default 60 s; extended while handling). */
  ackWaitMs?: number;
  /** Lifetime of one pull request (default 5 s): a pull left on a lost consumer leader ends then. */
  pullExpiresMs?: number;
  /** First delay of a failed message's redelivery; doubles per delivery up to `maxRetryDelayMs` (default 1 s). */
  retryDelayMs?: number;
  /** Longest delay of a redelivery (default 30 s; = retryDelayMs: a fixed delay). */
  maxRetryDelayMs?: number;
  /** Named in the log lines. */
  label?: string;
  log?: (msg: string) => void;
}

export interface DurableConsumer {
  /** Stops pulling; waits for the message being handled (acked or nak'ed first). */
  stop(): Promise<void>;
  /** Pulls again at once (capacity went up) instead of at the next capacity check. */
  wake(): void;
}

const CONSUMER_NOT_FOUND = 10014;
const CAPACITY_CHECK_MS = 200;

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const message = (err: unknown) => (err instanceof Error ? err.message : String(err));

/** An ack, nak or term that fails (the connection is gone) changes nothing: the server redelivers. */
function settle(f: () => void): void {
  try {
    f();
  } catch {
    // redelivered after ack_wait
  }
}

/**
 * The one hand-built JetStream consumer loop: a durable pull consumer (explicit ack, created or its
 * filter updated in place, never deleted), messages handled one at a time in order, failures nak'ed
 * with backoff, garbage terminated, pulls gated by `capacity`. NATS errors (a leader election, a
 * reconnect, the consumer removed) end the current pull; it pulls again after a second, recreating
 * the consumer if it is gone. Ends by itself when the connection is closed.
 */
export async function startDurableConsumer(opts: DurableConsumerOptions): Promise<DurableConsumer> {
  const { nc, stream, durable } = opts;
  const label = opts.label ?? durable;
  const log = opts.log ?? (() => undefined);
  const batch = opts.batch ?? 64;
  const ackWaitMs = opts.ackWaitMs ?? 60_000;
  const retryDelayMs = opts.retryDelayMs ?? 1_000;
  const maxRetryDelayMs = opts.maxRetryDelayMs ?? 30_000;
  const filters = [...opts.filterSubjects];
  if (filters.length === 0) throw new Error(`${label}: no filter subject`);
  const filter: Pick<ConsumerConfig, 'filter_subject' | 'filter_subjects'> =
    filters.length === 1
      ? { filter_subject: filters[0], filter_subjects: undefined }
      : { filter_subject: undefined, filter_subjects: filters };
  const js = jetstream(nc);
  let jsmPromise: Promise<JetStreamManager> | undefined;
  const jsm = () => (jsmPromise ??= jetstreamManager(nc));

  const sameFilter = (c: ConsumerConfig) => {
    const has = c.filter_subjects?.length ? c.filter_subjects : c.filter_subject ? [c.filter_subject] : [];
    return has.length === filters.length && filters.every((f) => has.includes(f));
  };

  const ensureConsumer = async (): Promise<void> => {
    const m = await jsm();
    try {
      const ci = await m.consumers.info(stream, durable);
      if (sameFilter(ci.config)) return;
      // Other subjects now (the handled types moved): same position, new filter (messages of the
      // new subjects the position already passed are not delivered; a new durable name starts over).
      await m.consumers.update(stream, durable, { ...filter });
      return;
    } catch (err) {
      if (!(err instanceof JetStreamApiError && err.code === CONSUMER_NOT_FOUND)) throw err;
    }
    try {
      await m.consumers.add(stream, {
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
      await m.consumers.info(stream, durable).catch(() => {
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

  const onMessage = async (m: JsMsg): Promise<void> => {
    // A long handling keeps its message from being redelivered to a competing replica meanwhile.
    const working = setInterval(() => settle(() => m.working()), Math.max(1_000, ackWaitMs / 3));
    try {
      const outcome = await opts.handle(m);
      settle(() => (outcome === 'term' ? m.term() : m.ack()));
    } catch (err) {
      const delay = Math.min(maxRetryDelayMs, retryDelayMs * 2 ** Math.min(10, m.info.deliveryCount - 1));
      log(`${label}: handling message ${m.seq} failed (retried in ${delay} ms): ${message(err)}`);
      settle(() => m.nak(delay));
    } finally {
      clearInterval(working);
    }
  };

  const loop = async (): Promise<void> => {
    while (!stopping && !nc.isClosed()) {
      const free = opts.capacity ? Math.min(batch, Math.floor(opts.capacity())) : batch;
      if (free <= 0) {
        await idle(CAPACITY_CHECK_MS);
        continue;
      }
      try {
        const consumer = await js.consumers.get(stream, durable);
        const messages = await consumer.fetch({ max_messages: free, expires: opts.pullExpiresMs ?? 5_000 });
        pulling = messages;
        if (stopping) messages.stop();
        for await (const m of messages) {
          // Pulled but not to be handled here: back to the consumer for a replica (or later).
          if (stopping) settle(() => m.nak());
          else if (opts.capacity && opts.capacity() <= 0) settle(() => m.nak(CAPACITY_CHECK_MS));
          else await onMessage(m);
        }
      } catch (err) {
        if (stopping || nc.isClosed()) break;
        log(`${label}: pulling: ${message(err)}`);
        await sleep(1_000);
        await ensureConsumer().catch((e: unknown) => log(`${label}: consumer: ${message(e)}`));
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
      // The last acks and naks are on their way: a flush round trip puts them on the server before stop resolves.
      if (!nc.isClosed()) await nc.flush().catch(() => undefined);
    },
  };
}
