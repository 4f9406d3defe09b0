/**
 * A deliberately NON-idempotent projection for the runner's tests: every event adds to a counter
 * and writes one row to an `applied` log with no unique key, so an event applied twice shows up
 * both as a wrong count and as a duplicate row. Not exported from the package.
 */
import { sql, type QueryCreator } from 'kysely';
import { z } from 'zod';
import type { MigrationSet } from '#libs/database';
import { defineEvent, EventRegistry, type StoredCommit, type StoredEvent } from '#libs/eventstore';
import { defineProjection, type RunnableProjection } from '../projection.js';

/** Counted: handled. Noted: stored in the same stream, never handled (only moves the checkpoint). */
export const Counted = defineEvent('Counted', z.object({ by: z.number().int() }));
export const Noted = defineEvent('Noted', z.object({ text: z.string() }));
export const countingRegistry = () => new EventRegistry().register(Counted, Noted);

export interface CountRow {
  aggregate_id: string;
  count: number;
  total: number;
  last_seq: number;
}
export interface AppliedRow {
  seq: number;
  idx: number;
  aggregate_id: string;
}
export interface CountingTables {
  counts: CountRow;
  applied: AppliedRow;
}

/** Creates `counts` and `applied` in `schema` (which it creates unless it is public). */
export function countingMigrations(schema = 'public'): MigrationSet {
  const q = (t: string) => `"${schema}"."${t}"`;
  return {
    owner: `counting_${schema}`,
    migrations: [
      {
        name: '0001_counts',
        up: `
          ${schema === 'public' ? '' : `CREATE SCHEMA IF NOT EXISTS "${schema}";`}
          CREATE TABLE ${q('counts')} (
            aggregate_id text PRIMARY KEY,
            count bigint NOT NULL,
            total bigint NOT NULL,
            last_seq bigint NOT NULL
          );
          CREATE TABLE ${q('applied')} (seq bigint NOT NULL, idx int NOT NULL, aggregate_id text NOT NULL);
          CREATE INDEX ON ${q('applied')} (seq, idx);`,
      },
    ],
  };
}

export interface CountingOptions {
  name?: string;
  /** Called inside the transaction, after the writes and before the sleep. */
  onApply?: (events: readonly StoredEvent[], db: QueryCreator<CountingTables>) => void | Promise<void>;
  /** pg_sleep at the end of every batch, inside the transaction (to make batches slow). */
  sleepMs?: number | (() => number);
}

/** Folds a batch by aggregate into one multi-row upsert (plus the `applied` log rows). */
export function countingProjection(opts: CountingOptions = {}): RunnableProjection {
  return defineProjection<CountingTables>({
    name: opts.name ?? 'counts',
    tables: ['counts', 'applied'],
    canHandle: ['Counted'],
    async apply(db, events) {
      const folded = new Map<string, CountRow>();
      for (const e of events) {
        const id = e.aggregate.id;
        const by = (e.data as { by: number }).by;
        const row = folded.get(id);
        if (row) {
          row.count += 1;
          row.total += by;
          row.last_seq = e.seq;
        } else folded.set(id, { aggregate_id: id, count: 1, total: by, last_seq: e.seq });
      }
      await db
        .insertInto('counts')
        .values([...folded.values()])
        .onConflict((oc) =>
          oc.column('aggregate_id').doUpdateSet({
            count: sql`counts.count + excluded.count`,
            total: sql`counts.total + excluded.total`,
            last_seq: sql`excluded.last_seq`,
          }),
        )
        .execute();
      await db
        .insertInto('applied')
        .values(events.map((e) => ({ seq: e.seq, idx: e.index, aggregate_id: e.aggregate.id })))
        .execute();
      await opts.onApply?.(events, db);
      const sleep = typeof opts.sleepMs === 'function' ? opts.sleepMs() : (opts.sleepMs ?? 0);
      if (sleep > 0) await db.selectNoFrom(sql<number>`pg_sleep(${sleep / 1000})`.as('slept')).execute();
    },
  });
}

/** What `counts` must hold after the given commits: the recount from the log. */
export function recount(
  commits: readonly StoredCommit[],
): Map<string, { count: number; total: number; last_seq: number }> {
  const out = new Map<string, { count: number; total: number; last_seq: number }>();
  for (const c of commits) {
    for (const e of c.events) {
      if (e.type !== 'Counted') continue;
      const row = out.get(e.aggregate.id) ?? { count: 0, total: 0, last_seq: 0 };
      row.count += 1;
      row.total += (e.data as { by: number }).by;
      row.last_seq = e.seq;
      out.set(e.aggregate.id, row);
    }
  }
  return out;
}
