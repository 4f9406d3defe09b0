import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { sql } from 'kysely';
import { z } from 'zod';
import { defineEvent, type EventStore, type StoredCommit } from '#libs/eventstore';
import { createTestEnvironment, untypedDb, type TestEnvironment } from '#libs/testing';
import { projectionMigrations } from './migrations.js';
import type { RunnableProjection } from './projection.js';
import {
  applyBatch,
  projectionStatus,
  ProjectionRunner,
  readCheckpoint,
  type RunnerOptions,
} from './runner.js';
import { countingMigrations, countingProjection, countingRegistry, recount } from './testing/counting.js';
import {
  appendMany,
  assertExactlyOnce,
  countedLog,
  cp,
  readCounts,
  until,
  type TestDb,
} from './testing/helpers.js';

describe('ProjectionRunner (real JetStream + Postgres)', () => {
  let env: TestEnvironment;
  let store: EventStore;
  let db: TestDb;
  const runners: ProjectionRunner[] = [];
  const runner = (projection: RunnableProjection, opts?: RunnerOptions) => {
    const r = new ProjectionRunner(store, untypedDb(db), projection, opts);
    runners.push(r);
    return r;
  };

  before(async () => {
    env = await createTestEnvironment();
    store = env.newStore(countingRegistry());
    await store.ensureStream();
    await env.migrate([
      projectionMigrations,
      countingMigrations('public'),
      countingMigrations('failing'),
      countingMigrations('redelivery'),
      countingMigrations('draining'),
      countingMigrations('direct'),
      countingMigrations('quick'),
    ]);
    db = env.newDb();
  });
  after(async () => {
    for (const r of runners) await r.stop();
    await env.close();
  });

  it('applies every event once, with the checkpoint committed in the same transaction as the rows', async () => {
    let last = await appendMany(store, 300, { tag: 'a' });
    // Commits of a type this service does not know (another service's private events) are in the
    // same stream; the runner must pass over them without decoding them.
    const Foreign = defineEvent('ForeignThing', z.object({ x: z.number() }));
    const foreign = env.newStore(countingRegistry().register(Foreign));
    for (let i = 0; i < 20; i++) {
      const r = await foreign.append(
        { workspaceId: 'w2', type: 'other', id: `f${i}` },
        0,
        i % 2
          ? [{ type: 'ForeignThing', data: { x: i } }]
          : [
              { type: 'ForeignThing', data: { x: i } },
              { type: 'Counted', data: { by: 10 } },
            ],
        { commandId: `foreign-${i}`, actor: 'other-service' },
      );
      last = r.seq;
    }

    const r = runner(countingProjection({ sleepMs: 15 }), { batchSize: 25 });
    // While it runs, look at rows and checkpoint in ONE statement (one snapshot): the rows must
    // always be exactly those of the events at or below the checkpoint.
    const counted = await countedLog(store);
    const eventsUpTo = (seq: number) =>
      counted.filter((c) => c.seq <= seq).reduce((n, c) => n + c.events.length, 0);
    const observations: { checkpoint: number; applied: number }[] = [];
    let watching = true;
    const watcher = (async () => {
      while (watching) {
        const { rows } = await sql<{ checkpoint: number | null; applied: number }>`
          SELECT (SELECT stream_seq FROM projection_checkpoints WHERE name = 'counts')::int AS checkpoint,
                 (SELECT count(*) FROM applied)::int AS applied`.execute(db);
        observations.push({ checkpoint: rows[0]!.checkpoint ?? 0, applied: rows[0]!.applied });
        await new Promise((res) => setTimeout(res, 3));
      }
    })();
    await r.start();
    await r.waitFor(last, 60_000);
    watching = false;
    await watcher;

    assert.equal(r.position, last);
    assert.equal(await assertExactlyOnce(db, store, 'counts'), last);
    const moving = observations.filter((o) => o.checkpoint > 0 && o.checkpoint < last);
    assert.ok(moving.length >= 3, `saw the projection mid-way ${moving.length} times`);
    for (const o of observations)
      assert.equal(o.applied, eventsUpTo(o.checkpoint), `rows and checkpoint disagree at ${o.checkpoint}`);
    // The foreign commits that carried a Counted event were counted, and only that event.
    const f0 = (await readCounts(db)).get('f0');
    assert.deepEqual(f0, { count: 1, total: 10, last_seq: f0!.last_seq });

    // It keeps following the live stream.
    const more = await appendMany(store, 30, { tag: 'a', from: 300 });
    await r.waitFor(more);
    await assertExactlyOnce(db, store, 'counts');
  });

  it('rolls back a failed batch together with its checkpoint and retries it', async () => {
    let failures = 0;
    const errors: unknown[] = [];
    const last = await store.lastSequence();
    const r = runner(
      countingProjection({
        name: 'counts_failing',
        onApply: (events) => {
          // Fail twice on the batch holding the middle of the log, after its rows were written.
          if (failures < 2 && events.some((e) => e.seq >= last / 2)) {
            failures++;
            throw new Error('boom');
          }
        },
      }),
      { batchSize: 40, schema: 'failing', onError: (err) => errors.push(err) },
    );
    await r.start();
    await r.waitFor(last, 30_000);
    assert.equal(failures, 2);
    assert.equal(errors.length, 2);
    assert.match(String(errors[0]), /boom/);
    await assertExactlyOnce(db, store, 'counts_failing', 'failing');
  });

  it('skips sequences at or below the checkpoint, and a sequence repeated in one batch', async () => {
    const projection = countingProjection({ name: 'counts_direct' });
    const log = await countedLog(store);
    const head = log.slice(0, 10);
    const apply = (commits: StoredCommit[]) => applyBatch(untypedDb(db), projection, commits, 'direct');

    assert.equal(await apply(head.slice(0, 5)), head[4]!.seq);
    // A redelivery of what is applied, then a batch mixing old and new, with a repeat inside.
    assert.equal(await apply(head.slice(0, 5)), head[4]!.seq);
    assert.equal(await apply([...head.slice(2, 8), head[7]!, head[6]!, ...head.slice(8)]), head[9]!.seq);
    assert.equal(await readCheckpoint(cp(db), 'counts_direct'), head[9]!.seq);
    assert.deepStrictEqual(await readCounts(db, 'direct'), recount(head));
    const applied = await sql<{ n: number }>`SELECT count(*)::int AS n FROM direct.applied`.execute(db);
    assert.equal(
      applied.rows[0]!.n,
      head.reduce((n, c) => n + c.events.length, 0),
    );
  });

  it('skips messages the server redelivers while their batch is still being applied', async () => {
    const name = 'counts_redelivery';
    // The server redelivers after 1 s; the first batch takes 1.6 s, so everything delivered by
    // then is delivered again.
    let first = true;
    const r = runner(
      countingProjection({
        name,
        sleepMs: () => {
          const ms = first ? 1600 : 0;
          first = false;
          return ms;
        },
      }),
      { batchSize: 30, schema: 'redelivery', ackWaitMs: 1000 },
    );
    const last = await store.lastSequence();
    await r.start();
    await r.waitFor(last, 30_000);
    await new Promise((res) => setTimeout(res, 300)); // let the redeliveries in flight arrive too
    const ci = await (await store.jsm()).consumers.info(store.stream, r.durableName);
    assert.equal(ci.config.ack_wait, 1_000_000_000);
    assert.ok(ci.delivered.consumer_seq > ci.delivered.stream_seq, 'the server redelivered messages');
    await assertExactlyOnce(db, store, name, 'redelivery');
  });

  it('stop() commits the batch in hand, then stops; a new runner resumes from the checkpoint', async () => {
    const name = 'counts_draining';
    const last = await store.lastSequence();
    const applying: number[] = [];
    const r1 = runner(
      countingProjection({
        name,
        sleepMs: 250,
        onApply: (events) => void applying.push(events[events.length - 1]!.seq),
      }),
      { batchSize: 20, schema: 'draining' },
    );
    await r1.start();
    await until('a second batch in progress', () => applying.length >= 2, 30_000, 5);
    const batches = applying.length;
    const inHand = applying[batches - 1]!; // its rows are written, its transaction is still open
    assert.ok((await readCheckpoint(cp(db), name)) < inHand);
    const t0 = Date.now();
    await r1.stop();
    assert.ok(Date.now() - t0 < 2_000, 'stop did not wait for the backlog');
    const stoppedAt = await readCheckpoint(cp(db), name);
    assert.ok(
      stoppedAt >= inHand,
      `the batch in hand was committed (checkpoint ${stoppedAt}, batch up to ${inHand})`,
    );
    assert.equal(r1.position, stoppedAt);
    assert.ok(stoppedAt < last, 'it stopped before the end');
    await new Promise((res) => setTimeout(res, 400));
    assert.equal(applying.length, batches, 'nothing was applied after stop');
    assert.equal(await readCheckpoint(cp(db), name), stoppedAt);
    await assertExactlyOnce(db, store, name, 'draining');

    const r2 = runner(countingProjection({ name }), { schema: 'draining' });
    await r2.start();
    await r2.waitFor(last, 30_000);
    await assertExactlyOnce(db, store, name, 'draining');

    // stop() right after start() ends at once, in any state.
    const r3 = runner(countingProjection({ name: 'counts_quick' }), { schema: 'quick' });
    await r3.start();
    await r3.stop();
    await r2.stop();
  });

  it('reports checkpoint and lag per projection', async () => {
    const r = runners[0]!; // 'counts', still running
    const last = await store.lastSequence();
    await r.waitFor(last);
    const [first, unknown] = await projectionStatus(store, cp(db), ['counts', 'never_ran']);
    let s = first;
    assert.deepEqual(s, { name: 'counts', checkpoint: last, streamLastSeq: last, lag: 0 });
    assert.deepEqual(unknown, { name: 'never_ran', checkpoint: 0, streamLastSeq: last, lag: last });
    await r.stop();
    const now = await appendMany(store, 7, { tag: 'lag' });
    [s] = await projectionStatus(store, cp(db), ['counts']);
    assert.deepEqual(s, { name: 'counts', checkpoint: last, streamLastSeq: now, lag: now - last });
    assert.equal(now - last, 7);
    await r.start();
    await r.waitFor(now);
    [s] = await projectionStatus(store, cp(db), ['counts']);
    assert.equal(s!.lag, 0);
    await assertExactlyOnce(db, store, 'counts');
  });
});
