import {
  AckPolicy,
  DeliverPolicy,
  JetStreamApiError,
  type ConsumerMessages,
  type JsMsg,
} from '@nats-io/jetstream';
import type { MsgHdrs } from '@nats-io/transport-node';
import { randomBytes } from 'node:crypto';
import { sql, type Kysely, type Transaction } from 'kysely';
import {
  ARCHIVE_BUCKET,
  EventArchive,
  Headers,
  type EventStore,
  type StoredCommit,
  type StoredEvent,
} from '#libs/eventstore';
import { checkpointSubject } from './checkpoint-watcher.js';
import {
  errorMessage,
  isTransientError,
  recordDeadLetters,
  type DeadLetter,
  type FailurePolicy,
} from './dead-letters.js';
import type { CheckpointTable } from './migrations.js';
import type { ProjectionLocks } from './leader.js';
import type { RunnableProjection } from './projection.js';
import { transactionWithTables, withTables } from '#libs/database';
import { observeProjectionLag } from '#libs/observability';

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
  /**
   * What to do with a commit the projection cannot decode or apply; overrides the projection's own
   * `onFailure` (default dead-letter). See docs/dead-letters.md.
   */
  onFailure?: FailurePolicy;
  onError?: (err: unknown) => void;
  /** Told each commit recorded as a dead letter (passed over, or halted at). */
  onDeadLetter?: (letter: DeadLetter) => void;
  /**
   * One active replica per projection: the runner consumes only while this process holds the
   * projection's lock, and otherwise stands by, following the shared checkpoint (announcements
   * and reads) so that its waitFor still works, and trying for the lock every `standbyMs`.
   * Without it, every runner consumes (and the batches' lock and checkpoint apply each commit once).
   */
  locks?: ProjectionLocks;
  /** How often a standby tries for the lock and an active runner checks it still holds it (default 500 ms). */
  standbyMs?: number;
}

export interface ProjectionStatus {
  name: string;
  checkpoint: number;
  streamLastSeq: number;
  lag: number;
}

/** The untyped connection (ServiceContext.db): each projection sees its own tables, the runner its checkpoints. */
type Db = Kysely<unknown>;

/** A commit reduced to what a projection needs: its sequence and the events it may handle. */
export interface Decoded {
  seq: number;
  events: readonly StoredEvent[];
  /** For a dead letter: the commit's subject and (read only then) its event types header. */
  subject?: string;
  eventTypes?: () => string | null;
  /** Why the commit could not be decoded (it is then a dead letter, or the halt). */
  failure?: string;
}

/** A commit of the replay that could not be decoded: a dead letter (or the halt) with its reason. */
export function undecodable(m: { seq: number; subject: string; headers?: MsgHdrs }, err: unknown): Decoded {
  return {
    seq: m.seq,
    events: [],
    subject: m.subject,
    eventTypes: () => m.headers?.get(Headers.EventTypes) || null,
    failure: errorMessage(err),
  };
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

/** Thrown when a projection with the policy `halt` stopped at a commit (its checkpoint is just below it). */
export class ProjectionHaltedError extends Error {
  constructor(
    readonly projection: string,
    readonly seq: number,
    readonly reason: string,
  ) {
    super(`projection ${projection} halted at ${seq}: ${reason}`);
    this.name = 'ProjectionHaltedError';
  }
}

export interface BatchResult {
  checkpoint: number;
  deadLetters: DeadLetter[];
  /** Policy halt: the commit it stopped at (recorded, the checkpoint is below it). */
  halted?: DeadLetter;
}

interface BatchOptions {
  contiguous: boolean;
  policy: FailurePolicy;
  /**
   * Apply under savepoints, bisecting a failing batch down to the commits that fail on their own:
   * those are dead letters (or the halt), the others are applied. Without it, an apply error fails
   * the whole transaction (the fast path; the runner then retries the batch isolated).
   */
  isolate: boolean;
  onApplyError?: (err: unknown) => void;
}

const SAVEPOINT = sql.raw('projection_apply');

/**
 * Applies `commits` (in order) under savepoints: a batch that fails is rolled back and split in
 * two, down to single commits; a single commit that fails is `failed`. With `stopAtFirst`, nothing
 * after the first failed commit is applied. A transient error (isTransientError) is not the
 * commits': it propagates and fails the whole transaction, to be retried.
 */
async function applyIsolated(
  tx: Transaction<unknown>,
  projection: RunnableProjection,
  commits: readonly Decoded[],
  schema: string,
  stopAtFirst: boolean,
  onApplyError: ((err: unknown) => void) | undefined,
): Promise<{ commit: Decoded; error: string }[]> {
  const handled = new Set(projection.canHandle);
  const failed: { commit: Decoded; error: string }[] = [];
  const attempt = async (part: readonly Decoded[]): Promise<void> => {
    const events = part.flatMap((c) => c.events.filter((e) => handled.has(e.type)));
    if (events.length === 0) return;
    await sql`SAVEPOINT ${SAVEPOINT}`.execute(tx);
    try {
      await projection.applyIn(tx, schema, events);
      await sql`RELEASE SAVEPOINT ${SAVEPOINT}`.execute(tx);
      return;
    } catch (err) {
      if (isTransientError(err)) throw err;
      onApplyError?.(err);
      await sql`ROLLBACK TO SAVEPOINT ${SAVEPOINT}`.execute(tx);
      await sql`RELEASE SAVEPOINT ${SAVEPOINT}`.execute(tx);
      if (part.length === 1) {
        failed.push({ commit: part[0]!, error: errorMessage(err) });
        return;
      }
    }
    const mid = Math.ceil(part.length / 2);
    await attempt(part.slice(0, mid));
    if (stopAtFirst && failed.length > 0) return;
    await attempt(part.slice(mid));
  };
  await attempt(commits);
  return failed;
}

/**
 * The one write path of every projection: in ONE transaction, take the projection's lock, skip what
 * the checkpoint already covers (and any sequence repeated in the batch), apply the rest, record
 * the commits that could not be decoded or applied as dead letters, advance the checkpoint.
 * With the policy `halt`, the checkpoint stops below the first such commit instead.
 *
 * The lock and the checkpoint read must stay two statements: under READ COMMITTED a statement sees
 * the snapshot taken when it started, so a read in the locking statement could predate the commit
 * of the transaction it waited for.
 */
async function commitBatch(
  db: Db,
  projection: RunnableProjection,
  batch: readonly Decoded[],
  schema: string,
  opts: BatchOptions,
): Promise<BatchResult> {
  return db.transaction().execute(async (raw) => {
    const tx = transactionWithTables<CheckpointTable>(raw);
    await sql`SELECT pg_advisory_xact_lock(${lockKey(projection.name)})`.execute(tx);
    const checkpoint = await readCheckpoint(tx, projection.name);
    let last = checkpoint;
    const fresh: Decoded[] = [];
    for (const c of batch) {
      if (c.seq <= last) continue; // at or below the checkpoint (a redelivery), or repeated in this batch
      if (opts.contiguous && last === checkpoint && c.seq > checkpoint + 1) {
        throw new Error(`projection ${projection.name}: gap after ${checkpoint}, next is ${c.seq}`);
      }
      last = c.seq;
      fresh.push(c);
    }
    if (fresh.length === 0) return { checkpoint, deadLetters: [] };
    const res = await applyCommits(raw, projection, fresh, schema, opts);
    const stoppedAt = res.halted?.seq;
    if (stoppedAt !== undefined)
      last = fresh.filter((c) => c.seq < stoppedAt).reduce((m, c) => Math.max(m, c.seq), checkpoint);
    if (last > checkpoint) {
      const now = new Date();
      await tx
        .insertInto('projection_checkpoints')
        .values({ name: projection.name, stream_seq: last, updated_at: now })
        .onConflict((oc) => oc.column('name').doUpdateSet({ stream_seq: last, updated_at: now }))
        .execute();
    }
    return { checkpoint: last, deadLetters: res.deadLetters, ...(res.halted ? { halted: res.halted } : {}) };
  });
}

/**
 * Applies `commits` (fresh ones, in order) and records those that could not be decoded or applied
 * as dead letters, or (policy halt) stops at the first one (`halted`; nothing from it on is applied).
 */
export async function applyCommits(
  tx: Transaction<unknown>,
  projection: RunnableProjection,
  commits: readonly Decoded[],
  schema: string,
  opts: Pick<BatchOptions, 'policy' | 'isolate' | 'onApplyError'>,
): Promise<{ deadLetters: DeadLetter[]; halted?: DeadLetter }> {
  const halt = opts.policy === 'halt';
  const now = new Date();
  const letter = (c: Decoded, error: string, halted: boolean): DeadLetter => ({
    projection: projection.name,
    seq: c.seq,
    subject: c.subject ?? '',
    eventTypes: c.eventTypes?.() ?? null,
    error,
    halted,
    failedAt: now,
  });
  // Undecodable commits: dead letters, or (halt) the end of what this transaction applies.
  const undecodable = commits.findIndex((c) => c.failure !== undefined);
  const todo = halt && undecodable >= 0 ? commits.slice(0, undecodable) : commits;
  let stop: DeadLetter | undefined;
  if (halt && undecodable >= 0) stop = letter(commits[undecodable]!, commits[undecodable]!.failure!, true);
  const deadLetters: DeadLetter[] = [];
  const good: Decoded[] = [];
  for (const c of todo) {
    if (c.failure === undefined) good.push(c);
    else deadLetters.push(letter(c, c.failure, false));
  }
  if (opts.isolate) {
    const failed = await applyIsolated(tx, projection, good, schema, halt, opts.onApplyError);
    if (halt && failed.length > 0) stop = letter(failed[0]!.commit, failed[0]!.error, true);
    else for (const f of failed) deadLetters.push(letter(f.commit, f.error, false));
  } else {
    const handled = new Set(projection.canHandle);
    const events = good.flatMap((c) => c.events.filter((e) => handled.has(e.type)));
    if (events.length > 0) await projection.applyIn(tx, schema, events);
  }
  deadLetters.sort((x, y) => x.seq - y.seq);
  await recordDeadLetters(
    transactionWithTables<CheckpointTable>(tx),
    stop ? [...deadLetters, stop] : deadLetters,
  );
  return stop ? { deadLetters, halted: stop } : { deadLetters };
}

/**
 * Applies a decoded batch in ONE transaction: lock the projection, skip what the checkpoint already
 * covers, apply the rest, advance the checkpoint. Returns the new checkpoint.
 */
export async function applyBatch(
  db: Db,
  projection: RunnableProjection,
  commits: readonly StoredCommit[],
  schema = 'public',
): Promise<number> {
  const res = await commitBatch(db, projection, commits, schema, {
    contiguous: false,
    policy: 'halt',
    isolate: false,
  });
  return res.checkpoint;
}

/** Lifetime of one pull request of a projection's consumer (see consumeOnce). */
const PULL_EXPIRES_MS = 4_000;

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
 *
 * With `locks` (services do), only the replica holding the projection's leadership lock consumes;
 * the others stand by with no consumer and follow the checkpoint the active one announces, and
 * one of them takes over when the lock is free (the active replica stopped or died).
 */
export class ProjectionRunner {
  private messages: ConsumerMessages | undefined;
  private loop: Promise<void> | undefined;
  private stopping = false;
  private wakeUp: (() => void) | undefined;
  private checkpoint = 0;
  private deadLettered = 0;
  private halt: DeadLetter | undefined;
  /** Halts in a row at the same commit (for the back-off of its retries). */
  private halts = 0;
  private readonly instance = randomBytes(4).toString('hex');
  private readonly batchSize: number;
  private readonly handled: ReadonlySet<string>;
  /** Listeners told the checkpoint after each commit (used by tests and lag metrics). */
  private readonly waiters = new Set<{ seq: number; resolve: () => void }>();
  /** Standby: the checkpoint announcements of the active replica. */
  private following: { unsubscribe(): void } | undefined;
  private hasConsumer = false;
  /** Removes this runner from `runway_projection_lag` (libs/observability). */
  private unobserveLag: (() => void) | undefined;
  /** The same connection, typed for the checkpoint table. */
  private readonly checkpoints: Kysely<CheckpointTable>;
  /** Counters for tests and operators: times this runner became the active one. */
  readonly stats = { activations: 0 };

  constructor(
    private readonly store: EventStore,
    private readonly db: Db,
    readonly projection: RunnableProjection,
    private readonly opts: RunnerOptions = {},
  ) {
    this.checkpoints = withTables<CheckpointTable>(db);
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
    this.checkpoint = await readCheckpoint(this.checkpoints, this.projection.name);
    // The one shared durable consumer of earlier versions (no inactive threshold: it never goes away).
    await this.deleteConsumer(`proj_${this.projection.name}`);
    if (this.opts.locks) {
      this.follow();
      if (await this.tryLead()) await this.ensureConsumer();
    } else await this.ensureConsumer();
    this.loop = this.run();
    // runway_projection_lag{projection}: read when Prometheus scrapes, nothing in between.
    this.unobserveLag = observeProjectionLag(this.projection.name, async () =>
      Math.max(0, (await this.store.lastSequence()) - this.checkpoint),
    );
  }

  /** Whether this runner is the projection's active consumer (always, without `locks`). */
  get active(): boolean {
    return !this.opts.locks || this.opts.locks.holds(this.projection.name);
  }

  private async tryLead(): Promise<boolean> {
    const locks = this.opts.locks!;
    const was = locks.holds(this.projection.name);
    const now = await locks.tryAcquire(this.projection.name).catch((err: unknown) => {
      this.opts.onError?.(err);
      return false;
    });
    if (now && !was) {
      this.stats.activations++;
      // What the previous active replica committed last.
      this.checkpoint = Math.max(
        this.checkpoint,
        await readCheckpoint(this.checkpoints, this.projection.name),
      );
    }
    return now;
  }

  /** Follows the checkpoint the active replica announces (a standby's waitFor). */
  private follow(): void {
    this.following = this.store.nc.subscribe(checkpointSubject(this.store.prefix, this.projection.name), {
      callback: (err, msg) => {
        if (err || this.active) return;
        const seq = Number(msg.string());
        if (Number.isSafeInteger(seq) && seq > this.checkpoint) {
          this.checkpoint = seq;
          this.notifyWaiters();
        }
      },
    });
  }

  /**
   * Standby until this runner holds the lock (or stops): tries for it every standbyMs and reads
   * the checkpoint meanwhile (an announcement may be missed).
   */
  private async standby(): Promise<void> {
    const every = this.opts.standbyMs ?? 500;
    while (!this.stopping) {
      if (await this.tryLead()) return;
      try {
        const seq = await readCheckpoint(this.checkpoints, this.projection.name);
        if (seq > this.checkpoint) {
          this.checkpoint = seq;
          this.notifyWaiters();
        }
      } catch (err) {
        this.opts.onError?.(err);
      }
      await this.pause(every);
    }
  }

  /** While active: checks the lock every standbyMs, and ends the subscription when it is lost. */
  private watchLead(): () => void {
    const locks = this.opts.locks;
    if (!locks) return () => undefined;
    const t = setInterval(() => {
      locks
        .check()
        .catch(() => undefined)
        .finally(() => {
          if (!locks.holds(this.projection.name) && !this.stopping) {
            this.opts.onError?.(
              new Error(`projection ${this.projection.name}: lost its leadership, standing by`),
            );
            this.messages?.stop();
          }
        });
    }, this.opts.standbyMs ?? 500);
    return () => clearInterval(t);
  }

  private async deleteConsumer(name: string): Promise<void> {
    const jsm = await this.store.jsm();
    try {
      await jsm.consumers.delete(this.store.stream, name);
    } catch (err) {
      if (!(err instanceof JetStreamApiError && err.code === 10014)) throw err; // 10014: not found
    }
  }

  /**
   * Commits moved to the archive (EventArchive) are no longer in the stream, which the consumer
   * reads: a runner whose checkpoint is below the archived part (a projection added later, a
   * dropped database, one halted for weeks) first applies it from the log's replay, which merges
   * the archive back, then sets its checkpoint past the archived part so the consumer starts after it.
   */
  private async catchUpArchived(): Promise<void> {
    const buckets = await new EventArchive(this.store).buckets();
    if (buckets.length === 0) return;
    const top = Math.min(
      (buckets[buckets.length - 1]! + 1) * ARCHIVE_BUCKET - 1,
      await this.store.lastSequence(),
    );
    if (top <= this.checkpoint) return;
    let batch: Decoded[] = [];
    const flush = async () => {
      const result = await this.commit(batch);
      batch = [];
      this.checkpoint = result.checkpoint;
      for (const l of result.deadLetters) this.opts.onDeadLetter?.(l);
      this.deadLettered += result.deadLetters.length;
      if (result.halted) {
        this.halt = result.halted;
        this.opts.onDeadLetter?.(result.halted);
        throw new ProjectionHaltedError(this.projection.name, result.halted.seq, result.halted.error);
      }
    };
    const replay = this.store.replay({
      fromSeq: this.checkpoint + 1,
      types: this.projection.canHandle,
      onUndecodable: (m, err) => batch.push(undecodable(m, err)),
    });
    for await (const c of replay) {
      if (c.seq > top) break;
      batch.push({ seq: c.seq, events: c.events, subject: c.subject });
      if (batch.length >= this.batchSize) await flush();
    }
    if (batch.length > 0) await flush();
    // Every handled commit up to `top` is applied: the checkpoint moves over the rest (other types,
    // and the archived sequences the consumer would see as a gap).
    const name = this.projection.name;
    await this.checkpoints.transaction().execute(async (tx) => {
      await sql`SELECT pg_advisory_xact_lock(${lockKey(name)})`.execute(tx);
      const now = new Date();
      await tx
        .insertInto('projection_checkpoints')
        .values({ name, stream_seq: top, updated_at: now })
        .onConflict((oc) =>
          oc.column('name').doUpdateSet({
            stream_seq: sql<number>`greatest(projection_checkpoints.stream_seq, excluded.stream_seq)`,
            updated_at: now,
          }),
        )
        .execute();
    });
    this.checkpoint = await readCheckpoint(this.checkpoints, name);
  }

  /** (Re)creates this runner's consumer, starting right after the checkpoint, with nothing in flight. */
  private async ensureConsumer(): Promise<void> {
    await this.catchUpArchived();
    const jsm = await this.store.jsm();
    await this.deleteConsumer(this.durableName);
    this.hasConsumer = true;
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
      if (!this.active) {
        // Standing by: no consumer of ours (the server would keep delivering to it).
        if (this.hasConsumer) {
          this.hasConsumer = false;
          await this.deleteConsumer(this.durableName).catch((err: unknown) => this.opts.onError?.(err));
        }
        await this.standby();
        if (this.stopping) break;
        try {
          await this.ensureConsumer();
        } catch (err) {
          this.opts.onError?.(err);
          await this.pause(500);
          continue;
        }
      }
      const unwatch = this.watchLead();
      try {
        await this.consumeOnce();
        if (!this.stopping) await this.pause(100); // the subscription ended (connection closed, leadership lost): retry
      } catch (err) {
        if (this.stopping) break;
        this.opts.onError?.(err);
        // A halt is retried after 0.5 s, doubling up to 30 s while it stays; anything else (the
        // database or NATS unreachable) after 0.5 s.
        this.halts = err instanceof ProjectionHaltedError ? this.halts + 1 : 0;
        await this.pause(this.halts > 0 ? Math.min(500 * 2 ** Math.min(this.halts - 1, 6), 30_000) : 500);
        if (this.stopping) break;
        if (!this.active) continue; // standing by now: no consumer to recreate
        try {
          this.checkpoint = await readCheckpoint(this.checkpoints, this.projection.name);
          await this.ensureConsumer();
        } catch (e) {
          this.opts.onError?.(e);
        }
      } finally {
        unwatch();
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
      // Pulls that expire every few seconds (idle heartbeats at half that): a pull left on a
      // consumer leader that died (a cluster node lost) is noticed and re-sent within ~4 s, where
      // the client's default (30 s) stalled the projection, and every read-your-writes wait on it,
      // for up to 30 s (seen in test/durability/cluster-faults).
      expires: PULL_EXPIRES_MS,
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
      // registry does not know. One that cannot be decoded (not JSON, not an envelope, a payload
      // that fails its schema) is a dead letter.
      const eventTypes = () => m.headers?.get(Headers.EventTypes) || null;
      try {
        const events = this.store.decodeMatching(m, this.handled)?.events ?? [];
        commits.push({ seq: m.seq, events, subject: m.subject, eventTypes });
      } catch (err) {
        commits.push({ seq: m.seq, events: [], subject: m.subject, eventTypes, failure: errorMessage(err) });
      }
    }
    if (commits.length > 0) {
      const result = await this.commit(commits);
      this.checkpoint = result.checkpoint;
      for (const l of result.deadLetters) this.opts.onDeadLetter?.(l);
      this.deadLettered += result.deadLetters.length;
      // Readers in other processes wait for it (CheckpointWatcher).
      this.store.nc.publish(
        checkpointSubject(this.store.prefix, this.projection.name),
        String(this.checkpoint),
      );
      if (result.halted) {
        this.halt = result.halted;
        this.opts.onDeadLetter?.(result.halted);
        this.notifyWaiters();
        throw new ProjectionHaltedError(this.projection.name, result.halted.seq, result.halted.error);
      }
      this.halt = undefined;
    }
    // Ack "all" acknowledges every message up to the one acked: ack the highest sequence (the last
    // message may be an older redelivery, whose ack would acknowledge nothing new).
    top.ack();
    this.halts = 0;
    this.notifyWaiters();
  }

  /**
   * One transaction for the batch; if the projection fails on it, once more with the batch
   * bisected under savepoints, so that only the commits that fail on their own are dead letters
   * (or the halt) and the others are applied. A transient error (the database unreachable, a
   * serialization failure) propagates: the run loop retries the batch.
   */
  private async commit(commits: readonly Decoded[]): Promise<BatchResult> {
    const schema = this.opts.schema ?? 'public';
    const base = { contiguous: true, policy: this.policy };
    try {
      return await commitBatch(this.db, this.projection, commits, schema, { ...base, isolate: false });
    } catch (err) {
      if (isTransientError(err)) throw err;
      this.opts.onError?.(err);
      return commitBatch(this.db, this.projection, commits, schema, {
        ...base,
        isolate: true,
        onApplyError: (e) => this.opts.onError?.(e),
      });
    }
  }

  private notifyWaiters(): void {
    for (const w of this.waiters) {
      if (this.checkpoint >= w.seq) {
        this.waiters.delete(w);
        w.resolve();
      }
    }
  }

  /** The policy in force: the runner's option, else the projection's, else dead-letter. */
  get policy(): FailurePolicy {
    return this.opts.onFailure ?? this.projection.onFailure ?? 'dead-letter';
  }

  /** Policy halt: the commit the projection stopped at, until it applies. */
  get halted(): DeadLetter | undefined {
    return this.halt;
  }

  /** Commits this runner recorded as dead letters and passed over since it was created. */
  get deadLetterCount(): number {
    return this.deadLettered;
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
    this.unobserveLag?.();
    this.unobserveLag = undefined;
    this.messages?.stop();
    this.wakeUp?.();
    const wasRunning = this.loop !== undefined;
    await this.loop?.catch(() => undefined);
    this.loop = undefined;
    this.messages = undefined;
    this.following?.unsubscribe();
    this.following = undefined;
    if (wasRunning && this.hasConsumer) {
      this.hasConsumer = false;
      await this.deleteConsumer(this.durableName).catch((err: unknown) => this.opts.onError?.(err));
    }
    // A standby takes over at its next try instead of when this session ends.
    await this.opts.locks?.release(this.projection.name).catch(() => undefined);
  }
}

export async function projectionStatus(
  store: EventStore,
  db: Kysely<CheckpointTable>,
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
