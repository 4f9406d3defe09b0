import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { sql } from 'kysely';
import { z } from 'zod';
import { defineEvent, type EventStore } from '#libs/eventstore';
import { createTestEnvironment, untypedDb, type TestEnvironment } from '#libs/testing';
import { projectionMigrations } from './migrations.js';
import { rebuildProjection } from './rebuild.js';
import { ProjectionRunner, readCheckpoint } from './runner.js';
import { countingMigrations, countingProjection, countingRegistry } from './testing/counting.js';
import { appendMany, assertExactlyOnce, countedLog, cp, readCounts, type TestDb } from './testing/helpers.js';

describe('rebuildProjection (real JetStream + Postgres)', () => {
  let env: TestEnvironment;
  let store: EventStore;
  let db: TestDb;
  const runners: ProjectionRunner[] = [];

  before(async () => {
    env = await createTestEnvironment();
    store = env.newStore(countingRegistry());
    await store.ensureStream();
    await env.migrate([projectionMigrations, countingMigrations('public'), countingMigrations('shadow')]);
    db = env.newDb();
  });
  after(async () => {
    for (const r of runners) await r.stop();
    await env.close();
  });

  it('rebuilds the same rows as the live projection while events keep coming, and the live runner carries on', async () => {
    await appendMany(store, 2500, { tag: 'r', aggregates: 50 });
    // Another service's private events in the same stream: the rebuild must not need to know them.
    const Foreign = defineEvent('ForeignThing', z.object({ x: z.number() }));
    const foreign = env.newStore(countingRegistry().register(Foreign));
    for (let i = 0; i < 10; i++) {
      await foreign.append(
        { workspaceId: 'w2', type: 'other', id: `f${i}` },
        0,
        [{ type: 'ForeignThing', data: { x: i } }],
        {
          commandId: `foreign-${i}`,
          actor: 'other-service',
        },
      );
    }
    // `counts` (public) will be rebuilt; `counts_shadow` (schema shadow) is never touched: the
    // reference for what the live projection produces.
    const live = new ProjectionRunner(store, untypedDb(db), countingProjection({ name: 'counts' }), {
      batchSize: 100,
    });
    const shadow = new ProjectionRunner(store, untypedDb(db), countingProjection({ name: 'counts_shadow' }), {
      schema: 'shadow',
    });
    runners.push(live, shadow);
    await live.start();
    await shadow.start();
    let last = await store.lastSequence();
    await live.waitFor(last, 30_000);
    await shadow.waitFor(last, 30_000);
    assert.deepStrictEqual(await readCounts(db, 'public'), await readCounts(db, 'shadow'));
    // Damage the live read model: a rebuild recomputes it from the log, not from the table.
    await sql`UPDATE counts SET count = 0, total = -1`.execute(db);
    await sql`DELETE FROM applied WHERE seq % 3 = 0`.execute(db);

    // Keep appending during the whole rebuild (the slow apply stretches the rebuild over many batches).
    let producing = true;
    let produced = 0;
    const producer = (async () => {
      while (producing) {
        await appendMany(store, 20, { tag: 'during', aggregates: 10, inFlight: 10, from: produced });
        produced += 20;
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
    const startedAt = await store.lastSequence();
    const livePositions: number[] = [];
    const sampler = setInterval(() => livePositions.push(live.position), 10);
    const result = await rebuildProjection(
      store,
      untypedDb(db),
      countingProjection({ name: 'counts', sleepMs: 25 }),
      { batchSize: 200 },
    );
    clearInterval(sampler);
    producing = false;
    await producer;

    assert.ok(
      produced > 0 && (await store.lastSequence()) > startedAt,
      'events were appended during the rebuild',
    );
    assert.ok(
      result.checkpoint >= startedAt,
      `rebuilt up to ${result.checkpoint}, the stream was at ${startedAt} when it began`,
    );
    assert.ok(new Set(livePositions).size > 1, 'the live runner kept committing during the rebuild');
    const exists = await sql<{
      n: number;
    }>`SELECT count(*)::int AS n FROM pg_namespace WHERE nspname = 'rebuild_counts'`.execute(db);
    assert.equal(exists.rows[0]!.n, 0, 'the scratch schema is gone');

    last = await store.lastSequence();
    await live.waitFor(last, 30_000);
    await shadow.waitFor(last, 30_000);
    assert.deepStrictEqual(await readCounts(db, 'public'), await readCounts(db, 'shadow'));
    await assertExactlyOnce(db, store, 'counts');
    await assertExactlyOnce(db, store, 'counts_shadow', 'shadow');
    const counted = (await countedLog(store)).filter((c) => c.seq <= result.checkpoint);
    assert.equal(
      result.events,
      counted.reduce((n, c) => n + c.events.length, 0),
    );

    // After the swap the live runner writes into the rebuilt tables.
    last = await appendMany(store, 40, { tag: 'after', aggregates: 8 });
    await live.waitFor(last, 30_000);
    await shadow.waitFor(last, 30_000);
    assert.equal(await readCheckpoint(cp(db), 'counts'), last);
    assert.deepStrictEqual(await readCounts(db, 'public'), await readCounts(db, 'shadow'));
    await assertExactlyOnce(db, store, 'counts');
    const indexes = await sql<{
      n: number;
    }>`SELECT count(*)::int AS n FROM pg_indexes WHERE schemaname = 'public' AND tablename = 'applied'`.execute(
      db,
    );
    assert.equal(indexes.rows[0]!.n, 1, 'the rebuilt table kept its index');
  });
});
