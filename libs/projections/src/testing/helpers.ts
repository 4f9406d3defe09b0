/** Helpers shared by the projection specs (not exported from the package). */
import assert from 'node:assert/strict';
import { sql, type Kysely } from 'kysely';
import type { DomainEvent, EventStore, StoredCommit } from '#libs/eventstore';
import { withTables } from '#libs/database';
import { untypedDb } from '#libs/testing';
import type { CheckpointTable } from '../migrations.js';
import { readCheckpoint } from '../runner.js';
import { recount, type CountingTables } from './counting.js';

export type TestDb = Kysely<CheckpointTable & CountingTables>;

/** The same database, typed for the checkpoint table only (kysely's types are invariant in the schema). */
export const cp = (db: TestDb): Kysely<CheckpointTable> => withTables<CheckpointTable>(untypedDb(db));

/** Commit i: mostly one Counted; every 10th a Noted only; every 10th (offset 7) three events. */
export function eventsFor(i: number): DomainEvent[] {
  if (i % 10 === 3) return [{ type: 'Noted', data: { text: `n${i}` } }];
  if (i % 10 === 7)
    return [
      { type: 'Counted', data: { by: 1 } },
      { type: 'Noted', data: { text: `n${i}` } },
      { type: 'Counted', data: { by: 2 } },
    ];
  return [{ type: 'Counted', data: { by: (i % 5) + 1 } }];
}

/**
 * Appends `count` commits over `aggregates` aggregates named `<tag><k>`, each conditional on the
 * aggregate's last sequence, `inFlight` at a time. Returns the highest sequence written.
 */
export async function appendMany(
  store: EventStore,
  count: number,
  opts: { tag: string; aggregates?: number; inFlight?: number; from?: number; workspaceId?: string } = {
    tag: 'a',
  },
): Promise<number> {
  const aggregates = opts.aggregates ?? 20;
  const inFlight = Math.min(opts.inFlight ?? 16, aggregates);
  const from = opts.from ?? 0;
  const workspaceId = opts.workspaceId ?? 'w1';
  let highest = 0;
  await Promise.all(
    Array.from({ length: inFlight }, async (_, w) => {
      // Writer w owns the aggregates k with k % inFlight === w, so no two appends race on one.
      const last = new Map<string, number>();
      for (let i = 0; i < count; i++) {
        if ((i % aggregates) % inFlight !== w) continue;
        const ref = { workspaceId, type: 'counter', id: `${opts.tag}${i % aggregates}` };
        const expected = last.get(ref.id) ?? (await store.lastSequenceOf(ref));
        const r = await store.append(ref, expected, eventsFor(from + i), {
          commandId: `${opts.tag}-${from + i}`,
          actor: 'test',
        });
        last.set(ref.id, r.seq);
        highest = Math.max(highest, r.seq);
      }
    }),
  );
  return highest;
}

/** Every commit in the store holding a Counted event, with only those events. */
export async function countedLog(store: EventStore): Promise<StoredCommit[]> {
  const out: StoredCommit[] = [];
  for await (const c of store.replay({ fromSeq: 1, types: ['Counted'] })) out.push(c);
  return out;
}

export async function readCounts(db: TestDb, schema = 'public') {
  const rows = await db.withSchema(schema).selectFrom('counts').selectAll().orderBy('aggregate_id').execute();
  return new Map(
    rows.map((r) => [
      r.aggregate_id,
      { count: Number(r.count), total: Number(r.total), last_seq: Number(r.last_seq) },
    ]),
  );
}

/**
 * Asserts that the projection's tables hold exactly the fold of the log up to its checkpoint: the
 * same counters as a recount, and one `applied` row per event (no event applied twice or skipped).
 */
export async function assertExactlyOnce(
  db: TestDb,
  store: EventStore,
  name: string,
  schema = 'public',
): Promise<number> {
  const checkpoint = await readCheckpoint(cp(db), name);
  const log = (await countedLog(store)).filter((c) => c.seq <= checkpoint);
  assert.deepStrictEqual(
    await readCounts(db, schema),
    recount(log),
    `counts of ${name} differ from a recount of the log`,
  );
  const dupes = await sql<{ seq: number; idx: number; n: number }>`
    SELECT seq, idx, count(*)::int AS n FROM ${sql.id(schema, 'applied')} GROUP BY seq, idx HAVING count(*) > 1 LIMIT 5`.execute(
    db,
  );
  assert.deepStrictEqual(dupes.rows, [], `events of ${name} applied twice`);
  const applied = await sql<{
    n: number;
  }>`SELECT count(*)::int AS n FROM ${sql.id(schema, 'applied')}`.execute(db);
  const expected = log.reduce((n, c) => n + c.events.length, 0);
  assert.equal(
    applied.rows[0]!.n,
    expected,
    `${name} applied ${applied.rows[0]!.n} events, the log has ${expected}`,
  );
  return checkpoint;
}

export async function until(
  what: string,
  cond: () => Promise<boolean> | boolean,
  timeoutMs = 30_000,
  everyMs = 20,
): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
