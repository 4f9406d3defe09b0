import { AckPolicy, DeliverPolicy, JetStreamApiError, type ConsumerMessages, type JsMsg } from '@nats-io/jetstream';
import { sql, type Kysely, type Transaction } from 'kysely';
import type { EventStore, StoredCommit, StoredEvent } from '#libs/eventstore';
import type { CheckpointTable } from './migrations.js';
import type { Projection } from './projection.js';

export interface RunnerOptions {
  /** Most commits folded into one transaction (default 1000). */
  batchSize?: number;
  /** Schema of the live tables (default public). */
  schema?: string;
  onError?: (err: unknown) => void;
}

export interface ProjectionStatus {
  name: string;
  checkpoint: number;
  streamLastSeq: number;
  lag: number;
}

type Db = Kysely<CheckpointTable>;

/** A stable 32-bit key for pg advisory locks. */
export function lockKey(name: string): number {
  let h = 0x811c9dc5;
  for (const ch of `projection:${name}`) h = Math.imul(h ^ ch.charCodeAt(0), 0x01000193);
  return h | 0;
}

export async function readCheckpoint(db: Kysely<CheckpointTable> | Transaction<CheckpointTable>, name: string): Promise<number> {
  const row = await db.selectFrom('projection_checkpoints').select('stream_seq').where('name', '=', name).executeTakeFirst();
  return row?.stream_seq ?? 0;
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
  return db.transaction().execute(async (tx) => {
    await sql`SELECT pg_advisory_xact_lock(${lockKey(projection.name)})`.execute(tx);
    const checkpoint = await readCheckpoint(tx, projection.name);
    const fresh = commits.filter((c) => c.seq > checkpoint);
    if (fresh.length === 0) return checkpoint;
    const handled = new Set(projection.canHandle);
    const events: StoredEvent[] = [];
    for (const c of fresh) for (const e of c.events) if (handled.has(e.type)) events.push(e);
    if (events.length > 0) await projection.apply(tx.withSchema(schema) as never, events);
    const last = fresh[fresh.length - 1]!.seq;
    await tx
      .insertInto('projection_checkpoints')
      .values({ name: projection.name, stream_seq: last, updated_at: new Date() })
      .onConflict((oc) => oc.column('name').doUpdateSet({ stream_seq: last, updated_at: new Date() }))
      .execute();
    return last;
  });
}

/**
 * Runs one projection: a durable pull consumer (ack policy "all": the last message of a committed
 * batch acknowledges the batch) feeding batched transactions with the checkpoint.
 */
export class ProjectionRunner {
  private messages: ConsumerMessages | undefined;
  private loop: Promise<void> | undefined;
  private stopping = false;
  private checkpoint = 0;
  private readonly batchSize: number;
  /** Listeners told the checkpoint after each commit (used by tests and lag metrics). */
  private readonly waiters = new Set<{ seq: number; resolve: () => void }>();

  constructor(
    private readonly store: EventStore,
    private readonly db: Db,
    readonly projection: Projection<unknown>,
    private readonly opts: RunnerOptions = {},
  ) {
    this.batchSize = opts.batchSize ?? 1000;
  }

  get durableName(): string {
    return `proj_${this.projection.name}`;
  }

  async start(): Promise<void> {
    this.stopping = false;
    this.checkpoint = await readCheckpoint(this.db, this.projection.name);
    await this.ensureConsumer();
    this.loop = this.run();
  }

  /** Makes sure the durable consumer exists and starts right after the checkpoint. */
  private async ensureConsumer(): Promise<void> {
    const jsm = await this.store.jsm();
    const start = this.checkpoint + 1;
    try {
      const ci = await jsm.consumers.info(this.store.stream, this.durableName);
      // The consumer must resume exactly after the checkpoint with nothing in flight; otherwise
      // (crash mid-batch, rebuild, dropped tables) recreate it from the checkpoint.
      if (ci.delivered.stream_seq === this.checkpoint && ci.num_ack_pending === 0) return;
      await jsm.consumers.delete(this.store.stream, this.durableName);
    } catch (err) {
      if (!(err instanceof JetStreamApiError && err.code === 10014)) throw err;
    }
    await jsm.consumers.add(this.store.stream, {
      durable_name: this.durableName,
      ack_policy: AckPolicy.All,
      deliver_policy: DeliverPolicy.StartSequence,
      opt_start_seq: start,
      filter_subject: this.store.allSubjects,
      max_ack_pending: 20_000,
      ack_wait: 30_000_000_000,
      inactive_threshold: 0,
    });
  }

  private async run(): Promise<void> {
    while (!this.stopping) {
      try {
        const consumer = await this.store.js.consumers.get(this.store.stream, this.durableName);
        this.messages = await consumer.consume({ max_messages: Math.max(this.batchSize * 2, 256) });
        let batch: JsMsg[] = [];
        for await (const m of this.messages) {
          batch.push(m);
          if (batch.length >= this.batchSize || m.info.pending === 0) {
            await this.flush(batch);
            batch = [];
          }
          if (this.stopping) break;
        }
        if (batch.length) await this.flush(batch);
      } catch (err) {
        if (this.stopping) break;
        this.opts.onError?.(err);
        await new Promise((r) => setTimeout(r, 500));
        try {
          this.checkpoint = await readCheckpoint(this.db, this.projection.name);
          await this.ensureConsumer();
        } catch (e) {
          this.opts.onError?.(e);
        }
      }
    }
  }

  private async flush(batch: JsMsg[]): Promise<void> {
    const commits = batch.filter((m) => m.seq > this.checkpoint).map((m) => this.store.decode(m));
    if (commits.length > 0) {
      const first = commits[0]!.seq;
      if (first > this.checkpoint + 1) {
        // A gap: another process moved the checkpoint (rebuild) or the consumer is ahead. Reread.
        const cp = await readCheckpoint(this.db, this.projection.name);
        if (first > cp + 1) throw new Error(`projection ${this.projection.name}: gap after ${cp}, next is ${first}`);
      }
      this.checkpoint = await applyBatch(this.db, this.projection, commits, this.opts.schema);
    }
    batch[batch.length - 1]!.ack();
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

  /** Finishes the batch in hand, then stops fetching. */
  async stop(): Promise<void> {
    this.stopping = true;
    this.messages?.stop();
    await this.loop?.catch(() => undefined);
  }
}

export async function projectionStatus(store: EventStore, db: Db, names: readonly string[]): Promise<ProjectionStatus[]> {
  const last = await store.lastSequence();
  const rows = await db.selectFrom('projection_checkpoints').selectAll().execute();
  const byName = new Map(rows.map((r) => [r.name, r.stream_seq]));
  return names.map((name) => {
    const checkpoint = byName.get(name) ?? 0;
    return { name, checkpoint, streamLastSeq: last, lag: Math.max(0, last - checkpoint) };
  });
}
