import {
  AckPolicy,
  DeliverPolicy,
  JetStreamApiError,
  type ConsumerMessages,
  type JsMsg,
} from '@nats-io/jetstream';
import { randomBytes } from 'node:crypto';
import { sql, type Kysely, type Transaction } from 'kysely';
import { type EventStore, type StoredCommit, type StoredEvent } from '#libs/eventstore';
import { checkpointSubject } from './checkpoint-watcher.js';
import type { CheckpointTable } from './migrations.js';
import type { Projection } from './projection.js';

export interface RunnerOptions {
  /**
   * Most commits folded into one transaction (default 2000). Bigger batches amortise the
   * transaction, and a projection that folds by key writes fewer rows per event.
   */
  batchSize?: number;
  /** Schema of the live tables (default public). */
  schema?: string;
  /** How long the server waits for the ack of a delivered message before redelivering it (default 30 s). */
  ackWaitMs?: number;
  onError?: (err: unknown) => void;
}

export interface ProjectionStatus {
  name: string;
  checkpoint: number;
  streamLastSeq: number;
  lag: number;
}

type Db = Kysely<CheckpointTable>;

/** A commit reduced to what a projection needs: its sequence and the events it may handle. */
interface Decoded {
  seq: number;
  events: readonly StoredEvent[];
}

/** A stable 32-bit key for pg advisory locks. */
export function lockKey(name: string): number {
  let h = 0x811c9dc5;
  for (const ch of `projection:${name}`) h = Math.imul(h ^ ch.charCodeAt(0), 0x01000193);
  return h | 0;
}

export async function readCheckpoint(
  db: Kysely<CheckpointTable> | Transaction<CheckpointTable>,
  name: string,
): Promise<number> {
  const row = await db
    .selectFrom('projection_checkpoints')
    .select('stream_seq')
    .where('name', '=', name)
    .executeTakeFirst();
  return row ? Number(row.stream_seq) : 0; // bigint: a string unless the int8 parser is installed
}

/**
 * The one write path of every projection: in ONE transaction, take the projection's lock, skip what
 * the checkpoint already covers (and any sequence repeated in the batch), apply the rest, advance
 * the checkpoint. Returns the new checkpoint.
 *
 * The lock and the checkpoint read must stay two statements: under READ COMMITTED a statement sees
 * the snapshot taken when it started, so a read in the locking statement could predate the commit
 * of the transaction it waited for.
 */
async function commitBatch(
  db: Db,
  projection: Projection<unknown>,
  batch: readonly Decoded[],
  schema: string,
  opts: { contiguous: boolean },
): Promise<number> {
  const handled = new Set(projection.canHandle);
  return db.transaction().execute(async (tx) => {
    await sql`SELECT pg_advisory_xact_lock(${lockKey(projection.name)})`.execute(tx);
    const checkpoint = await readCheckpoint(tx, projection.name);
    let last = checkpoint;
    const events: StoredEvent[] = [];
    for (const c of batch) {
      if (c.seq <= last) continue; // at or below the checkpoint (a redelivery), or repeated in this batch
      if (opts.contiguous && last === checkpoint && c.seq > checkpoint + 1) {
        throw new Error(`projection ${projection.name}: gap after ${checkpoint}, next is ${c.seq}`);
      }
      last = c.seq;
      for (const e of c.events) if (handled.has(e.type)) events.push(e);
    }
    if (last === checkpoint) return checkpoint;
    if (events.length > 0) await projection.apply(tx.withSchema(schema) as never, events);
    const now = new Date();
    await tx
      .insertInto('projection_checkpoints')
      .values({ name: projection.name, stream_seq: last, updated_at: now })
      .onConflict((oc) => oc.column('name').doUpdateSet({ stream_seq: last, updated_at: now }))
      .execute();
    return last;
  });
}

/**
 * Applies a decoded batch in ONE transaction: lock the projection, skip what the checkpoint already
 * covers, apply the rest, advance the checkpoint. Returns the new checkpoint.
 */
export async function applyBatch(
  db: Db,
  projection: Projection<unknown>,
  commits: readonly StoredCommit[],
  schema = 'public',
): Promise<number> {
  return commitBatch(db, projection, commits, schema, { contiguous: false });
}

/**
 * Runs one projection: a pull consumer of its own (ack policy "all": acknowledging the highest
 * sequence of a committed batch acknowledges the batch) feeding batched transactions with the
 * checkpoint. Batches form by group commit: while one transaction runs, the messages that arrive
 * queue up, and the next transaction takes all of them (up to batchSize). A catch-up therefore runs
 * in full batches, and a live event waits for at most one transaction before its own.
 *
 * Each runner has its own consumer, created at its start from the checkpoint, so replicas of a
 * service (N gateways) each follow the whole stream: the projection's lock and checkpoint make each
 * commit apply once, whichever replica gets there first, and every replica's position (and so
 * waitFor, read-your-writes) follows the shared checkpoint. A shared durable consumer would split the
 * messages between replicas: each would see gaps, and none would see the whole checkpoint move.
 * The consumer is durable with an inactive threshold: the server removes it when its process is gone.
 */
export class ProjectionRunner {
  private messages: ConsumerMessages | undefined;
  private loop: Promise<void> | undefined;
  private stopping = false;
  private wakeUp: (() => void) | undefined;
  private checkpoint = 0;
  private readonly instance = randomBytes(4).toString('hex');
  private readonly batchSize: number;
  private readonly handled: ReadonlySet<string>;
  /** Listeners told the checkpoint after each commit (used by tests and lag metrics). */
  private readonly waiters = new Set<{ seq: number; resolve: () => void }>();

  constructor(
    private readonly store: EventStore,
    private readonly db: Db,
    readonly projection: Projection<unknown>,
    private readonly opts: RunnerOptions = {},
  ) {
    this.batchSize = Math.max(1, opts.batchSize ?? 2000);
    this.handled = new Set(projection.canHandle);
  }

  /** Name of this runner's consumer (one per runner instance). */
  get durableName(): string {
    return `proj_${this.projection.name}_${this.instance}`;
  }

  async start(): Promise<void> {
    if (this.loop) throw new Error(`projection ${this.projection.name} is already running`);
    this.stopping = false;
    this.checkpoint = await readCheckpoint(this.db, this.projection.name);
    // The one shared durable consumer of earlier versions (no inactive threshold: it never goes away).
    await this.deleteConsumer(`proj_${this.projection.name}`);
    await this.ensureConsumer();
    this.loop = this.run();
  }

  private async deleteConsumer(name: string): Promise<void> {
    const jsm = await this.store.jsm();
    try {
      await jsm.consumers.delete(this.store.stream, name);
    } catch (err) {
      if (!(err instanceof JetStreamApiError && err.code === 10014)) throw err; // 10014: not found
    }
  }

  /** (Re)creates this runner's consumer, starting right after the checkpoint, with nothing in flight. */
  private async ensureConsumer(): Promise<void> {
    const jsm = await this.store.jsm();
    await this.deleteConsumer(this.durableName);
    await jsm.consumers.add(this.store.stream, {
      durable_name: this.durableName,
      ack_policy: AckPolicy.All,
      deliver_policy: DeliverPolicy.StartSequence,
      opt_start_seq: this.checkpoint + 1,
      filter_subject: this.store.allSubjects,
      // What the server delivers ahead of the commits, so it bounds what the client buffers (the
      // pull refills as messages arrive, not as they are applied): the batch being committed, the
      // next one, and some slack. Counted in messages: commits are small (DESIGN §3).
      max_ack_pending: Math.max(3 * this.batchSize, 1000),
      ack_wait: (this.opts.ackWaitMs ?? 30_000) * 1_000_000,
      inactive_threshold: 5 * 60 * 1_000_000_000,
    });
  }

  private async run(): Promise<void> {
    while (!this.stopping) {
      try {
        await this.consumeOnce();
        if (!this.stopping) await this.pause(100); // the subscription ended (connection closed): retry
      } catch (err) {
        if (this.stopping) break;
        this.opts.onError?.(err);
        await this.pause(500);
        if (this.stopping) break;
        try {
          this.checkpoint = await readCheckpoint(this.db, this.projection.name);
          await this.ensureConsumer();
        } catch (e) {
          this.opts.onError?.(e);
        }
      }
    }
  }

  /** One subscription to the durable consumer, until it ends, fails, or the runner stops. */
  private async consumeOnce(): Promise<void> {
    const consumer = await this.store.js.consumers.get(this.store.stream, this.durableName);
    // A consumer removed under us (server restarted without it, inactive while disconnected) fails
    // the subscription, and the error path recreates it from the checkpoint.
    const messages = await consumer.consume({
      max_messages: Math.max(this.batchSize, 256),
      abort_on_missing_resource: true,
    });
    this.messages = messages;
    // Reader: moves delivered messages into `queue` as they come. Writer (below): each time it is
    // free, commits whatever has queued (group commit).
    const queue: JsMsg[] = [];
    let ended = false;
    let failure: unknown;
    const reader = (async () => {
      try {
        for await (const m of messages) {
          queue.push(m);
          this.wakeUp?.();
        }
      } catch (err) {
        failure = err;
      } finally {
        ended = true;
        this.wakeUp?.();
      }
    })();
    try {
      // stop() may have come while we subscribed, before it could stop this subscription.
      while (!this.stopping) {
        if (queue.length === 0) {
          if (ended) break;
          await new Promise<void>((resolve) => (this.wakeUp = resolve));
          this.wakeUp = undefined;
          continue;
        }
        await this.flush(queue.splice(0, this.batchSize));
      }
    } finally {
      messages.stop();
      await reader;
    }
    if (failure !== undefined && !this.stopping) throw failure;
  }

  private pause(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const t = setTimeout(done, ms);
      function done() {
        clearTimeout(t);
        resolve();
      }
      this.wakeUp = done;
    }).finally(() => (this.wakeUp = undefined));
  }

  private async flush(batch: JsMsg[]): Promise<void> {
    let top = batch[0]!;
    let prev = this.checkpoint;
    const commits: Decoded[] = [];
    for (const m of batch) {
      if (m.seq > top.seq) top = m;
      if (m.seq <= prev) continue; // applied already: a redelivery
      prev = m.seq;
      // Commits without an event this projection handles only advance the checkpoint: their events
      // are not validated (big ones not even parsed), so they may be of types this service's
      // registry does not know.
      const events = this.store.decodeMatching(m, this.handled)?.events ?? [];
      commits.push({ seq: m.seq, events });
    }
    if (commits.length > 0) {
      this.checkpoint = await commitBatch(this.db, this.projection, commits, this.opts.schema ?? 'public', {
        contiguous: true,
      });
      // Readers in other processes wait for it (CheckpointWatcher).
      this.store.nc.publish(
        checkpointSubject(this.store.prefix, this.projection.name),
        String(this.checkpoint),
      );
    }
    // Ack "all" acknowledges every message up to the one acked: ack the highest sequence (the last
    // message may be an older redelivery, whose ack would acknowledge nothing new).
    top.ack();
    for (const w of this.waiters) {
      if (this.checkpoint >= w.seq) {
        this.waiters.delete(w);
        w.resolve();
      }
    }
  }

  /** Resolves once the checkpoint reached `seq`. */
  waitFor(seq: number, timeoutMs = 10_000): Promise<void> {
    if (this.checkpoint >= seq) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const w = { seq, resolve: () => (clearTimeout(t), resolve()) };
      const t = setTimeout(() => {
        this.waiters.delete(w);
        reject(new Error(`projection ${this.projection.name} did not reach ${seq} (at ${this.checkpoint})`));
      }, timeoutMs);
      this.waiters.add(w);
    });
  }

  get position(): number {
    return this.checkpoint;
  }

  /**
   * Finishes the transaction in hand (its batch is committed and acknowledged), then stops
   * fetching. Messages received but not yet in a transaction are left unacknowledged; the next
   * start resumes from the checkpoint.
   */
  async stop(): Promise<void> {
    this.stopping = true;
    this.messages?.stop();
    this.wakeUp?.();
    const wasRunning = this.loop !== undefined;
    await this.loop?.catch(() => undefined);
    this.loop = undefined;
    this.messages = undefined;
    if (wasRunning)
      await this.deleteConsumer(this.durableName).catch((err: unknown) => this.opts.onError?.(err));
  }
}

export async function projectionStatus(
  store: EventStore,
  db: Db,
  names: readonly string[],
): Promise<ProjectionStatus[]> {
  const last = await store.lastSequence();
  const rows = await db.selectFrom('projection_checkpoints').selectAll().execute();
  const byName = new Map(rows.map((r) => [r.name, Number(r.stream_seq)]));
  return names.map((name) => {
    const checkpoint = byName.get(name) ?? 0;
    return { name, checkpoint, streamLastSeq: last, lag: Math.max(0, last - checkpoint) };
  });
}
