import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { sql } from 'kysely';
import type { EventStore, StoredCommit, StoredEvent } from '#libs/eventstore';
import { createTestEnvironment, untypedDb, type TestEnvironment } from '#libs/testing';
import { deadLetterSummary, isTransientError, listDeadLetters } from './dead-letters.js';
import { projectionMigrations } from './migrations.js';
import type { RunnableProjection } from './projection.js';
import { rebuildProjection } from './rebuild.js';
import { ProjectionRunner, readCheckpoint, type RunnerOptions } from './runner.js';
import {
  countingMigrations,
  countingProjection,
  countingRegistry,
  recount,
  type CountingOptions,
} from './testing/counting.js';
import { appendMany, cp, readCounts, until, type TestDb } from './testing/helpers.js';

const POISON = 666;
const isPoison = (e: StoredEvent) => {
  const d = e.data;
  return typeof d === 'object' && d !== null && 'by' in d && d.by === POISON;
};

/** The counting projection, whose apply throws on a `Counted { by: 666 }` (after writing its rows). */
function poisoned(opts: CountingOptions = {}): RunnableProjection {
  return countingProjection({
    ...opts,
    onApply: async (events, db) => {
      if (events.some(isPoison)) throw new Error('poison event');
      await opts.onApply?.(events, db);
    },
  });
}

describe('dead letters (real JetStream + Postgres)', () => {
  let env: TestEnvironment;
  let store: EventStore;
  let db: TestDb;
  const runners: ProjectionRunner[] = [];
  const runner = (projection: RunnableProjection, opts?: RunnerOptions) => {
    const r = new ProjectionRunner(store, untypedDb(db), projection, opts);
    runners.push(r);
    return r;
  };
  /** Sequences of the three bad commits. */
  let garbage = 0;
  let badPayload = 0;
  let poison = 0;
  let last = 0;

  /** Every decodable commit holding a Counted event, but the poison one: what the projection must hold. */
  async function goodLog(upTo = Infinity): Promise<StoredCommit[]> {
    const out: StoredCommit[] = [];
    const replay = store.replay({ fromSeq: 1, types: ['Counted'], onUndecodable: () => undefined });
    for await (const c of replay) if (c.seq !== poison && c.seq <= upTo) out.push(c);
    return out;
  }

  async function assertHolds(schema: string, log: StoredCommit[]): Promise<void> {
    assert.deepStrictEqual(await readCounts(db, schema), recount(log));
    const applied = await sql<{
      n: number;
    }>`SELECT count(*)::int AS n FROM ${sql.id(schema, 'applied')}`.execute(db);
    assert.equal(
      applied.rows[0]!.n,
      log.reduce((n, c) => n + c.events.length, 0),
    );
  }

  before(async () => {
    env = await createTestEnvironment();
    store = env.newStore(countingRegistry());
    await store.ensureStream();
    await env.migrate([
      projectionMigrations,
      countingMigrations('public'),
      countingMigrations('halting'),
      countingMigrations('transient'),
    ]);
    db = env.newDb();

    await appendMany(store, 40, { tag: 'a' });
    // 8 bytes of garbage on a subject of the stream.
    garbage = (
      await store.js.publish(
        `${store.prefix}evt.w1.counter.garbage`,
        new Uint8Array([0xde, 0xad, 0xbe, 0xef, 0x00, 0x01, 0x02, 0x03]),
      )
    ).seq;
    // A valid envelope whose event fails its schema.
    const envelope = {
      v: 1,
      aggregate: { workspaceId: 'w1', type: 'counter', id: 'badpayload' },
      events: [{ type: 'Counted', version: 1, data: { by: 'seven' } }],
      meta: { commandId: 'bad-1', actor: 'test', correlationId: 'bad-1', time: new Date().toISOString() },
    };
    badPayload = (
      await store.js.publish(`${store.prefix}evt.w1.counter.badpayload`, JSON.stringify(envelope))
    ).seq;
    // A valid commit the projection's apply throws on.
    poison = (
      await store.append(
        { workspaceId: 'w1', type: 'counter', id: 'poison' },
        0,
        [{ type: 'Counted', data: { by: POISON } }],
        { commandId: 'poison-1', actor: 'test' },
      )
    ).seq;
    last = await appendMany(store, 40, { tag: 'a', from: 40 });
    assert.ok(garbage < badPayload && badPayload < poison && poison < last);
  });
  after(async () => {
    for (const r of runners) await r.stop();
    await env.close();
  });

  it('records what it cannot decode or apply as dead letters, applies the rest of the batch, and moves on', async () => {
    const errors: unknown[] = [];
    const seen: number[] = [];
    // One batch holds everything: the bad commits are bisected out of it.
    const r = runner(poisoned(), {
      batchSize: 500,
      onError: (e) => errors.push(e),
      onDeadLetter: (l) => seen.push(l.seq),
    });
    await r.start();
    await r.waitFor(last, 30_000);
    assert.equal(r.position, last);
    assert.equal(await readCheckpoint(cp(db), 'counts'), last);
    assert.deepEqual(seen, [garbage, badPayload, poison]);
    assert.equal(r.deadLetterCount, 3);
    assert.ok(errors.some((e) => /poison event/.test(String(e))));

    const letters = await listDeadLetters(cp(db), { projection: 'counts' });
    assert.deepEqual(
      letters.map((l) => l.seq).sort((a, b) => a - b),
      [garbage, badPayload, poison],
    );
    const bySeq = new Map(letters.map((l) => [l.seq, l]));
    assert.match(bySeq.get(garbage)!.error, /not JSON/);
    assert.equal(bySeq.get(garbage)!.subject, `${store.prefix}evt.w1.counter.garbage`);
    assert.equal(bySeq.get(garbage)!.eventTypes, null);
    assert.match(bySeq.get(badPayload)!.error, /Counted|by/);
    assert.match(bySeq.get(poison)!.error, /poison event/);
    assert.equal(bySeq.get(poison)!.eventTypes, 'Counted');
    assert.ok(letters.every((l) => !l.halted && Date.now() - l.failedAt.getTime() < 60_000));

    // Everything else is applied exactly once, the poison commit's rows rolled back.
    await assertHolds('public', await goodLog());

    // It keeps following the live stream.
    const more = await appendMany(store, 10, { tag: 'a', from: 80 });
    await r.waitFor(more);
    await assertHolds('public', await goodLog());

    const summary = await deadLetterSummary(cp(db), ['counts', 'other']);
    assert.equal(summary.get('counts')!.count, 3);
    assert.equal(summary.get('counts')!.halted, 0);
    assert.equal(summary.get('counts')!.latest.length, 3);
    assert.deepEqual(summary.get('other'), { projection: 'other', count: 0, halted: 0, latest: [] });
  });

  it('with the policy halt, stops right below the first bad commit until the policy changes', async () => {
    const name = 'counts_halt';
    const errors: unknown[] = [];
    // The projection's own option (the runner's would override it).
    const r = runner(
      { ...poisoned({ name }), onFailure: 'halt' },
      {
        batchSize: 500,
        schema: 'halting',
        onError: (e) => errors.push(e),
      },
    );
    assert.equal(r.policy, 'halt');
    await r.start();
    await until('the projection halts', () => r.halted !== undefined, 30_000);
    assert.equal(r.halted!.seq, garbage);
    assert.equal(r.position, garbage - 1);
    await new Promise((res) => setTimeout(res, 1500)); // it retries, and halts again
    assert.equal(await readCheckpoint(cp(db), name), garbage - 1);
    assert.ok(errors.filter((e) => /halted at/.test(String(e))).length >= 2);
    await assertHolds('halting', await goodLog(garbage - 1));
    const letters = await listDeadLetters(cp(db), { projection: name });
    assert.deepEqual(
      letters.map((l) => [l.seq, l.halted]),
      [[garbage, true]],
    );
    assert.equal((await deadLetterSummary(cp(db), [name])).get(name)!.halted, 1);
    await r.stop();

    // The operator switches it to dead-letter: it passes over the three and catches up.
    const r2 = runner(poisoned({ name }), { batchSize: 500, schema: 'halting', onFailure: 'dead-letter' });
    await r2.start();
    const end = await store.lastSequence();
    await r2.waitFor(end, 30_000);
    await assertHolds('halting', await goodLog());
    const s = (await deadLetterSummary(cp(db), [name])).get(name)!;
    assert.equal(s.count, 3);
    assert.equal(s.halted, 0);
  });

  it('retries a transient error (a killed connection, a serialization failure) instead of dead-lettering', async () => {
    const name = 'counts_transient';
    const errors: unknown[] = [];
    let killed = false;
    let serializationFailures = 0;
    const r = runner(
      poisoned({
        name,
        onApply: async (_events, q) => {
          if (!killed) {
            killed = true;
            // The database ends this transaction's connection (as a restart of PostgreSQL would).
            await q.selectNoFrom(sql<boolean>`pg_terminate_backend(pg_backend_pid())`.as('killed')).execute();
          }
          if (serializationFailures < 2) {
            serializationFailures++;
            throw Object.assign(new Error('could not serialize access due to concurrent update'), {
              code: '40001',
            });
          }
        },
      }),
      { batchSize: 500, schema: 'transient', onError: (e) => errors.push(e) },
    );
    await r.start();
    const end = await store.lastSequence();
    await r.waitFor(end, 60_000);
    assert.ok(killed);
    assert.equal(serializationFailures, 2);
    assert.ok(errors.length >= 3, `errors: ${errors.map(String).join('; ')}`);
    assert.ok(errors.every((e) => isTransientError(e) || /poison event/.test(String(e))));
    // Only the three bad commits are dead letters.
    const letters = await listDeadLetters(cp(db), { projection: name });
    assert.deepEqual(
      letters.map((l) => l.seq).sort((a, b) => a - b),
      [garbage, badPayload, poison],
    );
    await assertHolds('transient', await goodLog());
  });

  it('classifies errors', () => {
    const withCode = (code: string) => Object.assign(new Error('x'), { code });
    assert.ok(isTransientError(withCode('40001')));
    assert.ok(isTransientError(withCode('40P01')));
    assert.ok(isTransientError(withCode('57P01')));
    assert.ok(isTransientError(withCode('08006')));
    assert.ok(isTransientError(withCode('ECONNRESET')));
    assert.ok(isTransientError(new Error('Connection terminated unexpectedly')));
    assert.ok(isTransientError(new Error('wrapped', { cause: withCode('ECONNREFUSED') })));
    assert.ok(!isTransientError(withCode('23505'))); // unique violation: the commit's
    assert.ok(!isTransientError(withCode('22P02')));
    assert.ok(!isTransientError(new Error('poison event')));
    assert.ok(!isTransientError('a string'));
  });

  it('a rebuild passes over the same commits', async () => {
    const r = runners[0]!; // counts, still running
    const res = await rebuildProjection(store, untypedDb(db), poisoned());
    assert.equal(res.checkpoint, await store.lastSequence());
    await assertHolds('public', await goodLog());
    const letters = await listDeadLetters(cp(db), { projection: 'counts' });
    assert.equal(letters.length, 3);
    const more = await appendMany(store, 5, { tag: 'a', from: 90 });
    await r.waitFor(more);
    await assertHolds('public', await goodLog());
    // With the policy halt, a rebuild fails at the first bad commit (and swaps nothing in).
    await assert.rejects(
      rebuildProjection(store, untypedDb(db), poisoned(), { onFailure: 'halt' }),
      /halted at/,
    );
    await assertHolds('public', await goodLog());
  });
});
