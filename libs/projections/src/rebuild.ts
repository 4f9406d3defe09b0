import { sql, type Kysely, type Transaction } from 'kysely';
import type { EventStore } from '#libs/eventstore';
import type { FailurePolicy } from './dead-letters.js';
import type { CheckpointTable } from './migrations.js';
import type { RunnableProjection } from './projection.js';
import { transactionWithTables } from '#libs/database';
import { applyCommits, lockKey, ProjectionHaltedError, undecodable, type Decoded } from './runner.js';

export interface RebuildResult {
  name: string;
  events: number;
  checkpoint: number;
  ms: number;
}

/**
 * Replays the whole log from sequence 1 into fresh copies of the projection's tables (in a scratch
 * schema), then, holding the projection's lock so the live runner waits, catches up the tail and
 * swaps the fresh tables in with the checkpoint, in one transaction. The live runner keeps running
 * throughout; after the swap it skips what the rebuilt checkpoint covers.
 *
 * Only commits holding an event the projection handles are decoded, so the log may hold event types
 * this service's registry does not know. A commit that cannot be decoded or applied is a dead letter
 * as in the live runner (with the policy halt, the rebuild fails there and nothing is swapped).
 */
export async function rebuildProjection(
  store: EventStore,
  /** The untyped connection (ServiceContext.db). */
  db: Kysely<unknown>,
  projection: RunnableProjection,
  opts: { schema?: string; batchSize?: number; onFailure?: FailurePolicy } = {},
): Promise<RebuildResult> {
  const started = Date.now();
  const live = opts.schema ?? 'public';
  const scratch = `rebuild_${projection.name}`;
  const batchSize = opts.batchSize ?? 2000;
  const types = projection.canHandle;
  await sql`DROP SCHEMA IF EXISTS ${sql.id(scratch)} CASCADE`.execute(db);
  await sql`CREATE SCHEMA ${sql.id(scratch)}`.execute(db);
  for (const t of projection.tables) {
    await sql`CREATE TABLE ${sql.id(scratch, t)} (LIKE ${sql.id(live, t)} INCLUDING ALL)`.execute(db);
  }
  // Every handled event of a commit at or below `position` is in the scratch tables.
  let position = 0;
  let count = 0;
  const policy = opts.onFailure ?? projection.onFailure ?? 'dead-letter';
  const handled = new Set(types);
  const applyBatch = async (tx: Transaction<unknown>, commits: Decoded[]) => {
    // Always under savepoints: a rebuild is rare, and its batches are big.
    const res = await applyCommits(tx, projection, commits, scratch, { policy, isolate: true });
    if (res.halted) throw new ProjectionHaltedError(projection.name, res.halted.seq, res.halted.error);
    const dead = new Set(res.deadLetters.map((l) => l.seq));
    for (const c of commits)
      if (!dead.has(c.seq)) count += c.events.filter((e) => handled.has(e.type)).length;
    position = commits[commits.length - 1]!.seq;
  };
  /** Applies every handled commit after `position` up to (at least) the end of the stream now. */
  const pass = async (q: Transaction<unknown> | undefined): Promise<void> => {
    const end = await store.lastSequence();
    let batch: Decoded[] = [];
    const flush = async () => {
      const b = batch;
      batch = [];
      if (q) await applyBatch(q, b);
      else await db.transaction().execute((tx) => applyBatch(tx, b));
    };
    const replay = store.replay({
      fromSeq: position + 1,
      types,
      // Called between two commits of the replay, so the batch stays in stream order.
      onUndecodable: (m, err) => batch.push(undecodable(m, err)),
    });
    for await (const c of replay) {
      batch.push({ seq: c.seq, events: c.events, subject: c.subject });
      if (batch.length >= batchSize) await flush();
    }
    if (batch.length) await flush();
    position = Math.max(position, end);
  };
  // The bulk of the replay, outside the lock; passes again while the stream grew by more than a batch.
  await pass(undefined);
  for (let i = 0; i < 5 && (await store.lastSequence()) - position > batchSize; i++) await pass(undefined);
  // Tail + swap, under the projection's lock.
  await db.transaction().execute(async (tx) => {
    await sql`SELECT pg_advisory_xact_lock(${lockKey(projection.name)})`.execute(tx);
    await pass(tx);
    for (const t of projection.tables) {
      await sql`DROP TABLE ${sql.id(live, t)}`.execute(tx);
      await sql`ALTER TABLE ${sql.id(scratch, t)} SET SCHEMA ${sql.id(live)}`.execute(tx);
    }
    await sql`DROP SCHEMA ${sql.id(scratch)}`.execute(tx);
    await transactionWithTables<CheckpointTable>(tx)
      .insertInto('projection_checkpoints')
      .values({ name: projection.name, stream_seq: position, updated_at: new Date() })
      .onConflict((oc) => oc.column('name').doUpdateSet({ stream_seq: position, updated_at: new Date() }))
      .execute();
  });
  return { name: projection.name, events: count, checkpoint: position, ms: Date.now() - started };
}
