import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { AckPolicy, DeliverPolicy } from '@nats-io/jetstream';
import type { EventStore } from '#libs/eventstore';
import { createTestEnvironment, type TestEnvironment } from '#libs/testing';
import { projectionMigrations } from './migrations.js';
import { ProjectionRunner } from './runner.js';
import { countingMigrations, countingProjection, countingRegistry } from './testing/counting.js';
import { appendMany, assertExactlyOnce, cp, type TestDb } from './testing/helpers.js';

// Services run as several replicas (N gateways): each runs the same projections on the same tables.
describe('replicas of one projection (real JetStream + Postgres)', () => {
  let env: TestEnvironment;
  let store: EventStore;
  let db: TestDb;
  const runners: ProjectionRunner[] = [];
  before(async () => {
    env = await createTestEnvironment();
    store = env.newStore(countingRegistry());
    await store.ensureStream();
    await env.migrate([projectionMigrations, countingMigrations()]);
    db = env.newDb();
  });
  after(async () => {
    for (const r of runners) await r.stop();
    await env.close();
  });

  const consumerNames = async () => {
    const jsm = await store.jsm();
    const names: string[] = [];
    for await (const ci of jsm.consumers.list(store.stream)) names.push(ci.name);
    return names.sort();
  };

  it('apply each event once, and every replica sees the checkpoint move', async () => {
    // A shared durable consumer as earlier versions made it: removed at start.
    const jsm = await store.jsm();
    await jsm.consumers.add(store.stream, {
      durable_name: 'proj_counts',
      ack_policy: AckPolicy.All,
      deliver_policy: DeliverPolicy.All,
      filter_subject: store.allSubjects,
    });
    await appendMany(store, 600, { tag: 'a' });
    const errors: unknown[] = [];
    for (let i = 0; i < 3; i++) {
      const r = new ProjectionRunner(store, cp(db), countingProjection({ sleepMs: 5 }), {
        batchSize: 50,
        onError: (e) => errors.push(e),
      });
      runners.push(r);
      await r.start();
    }
    assert.deepEqual(await consumerNames(), runners.map((r) => r.durableName).sort());

    let producing = true;
    let produced = 0;
    const producer = (async () => {
      while (producing) {
        await appendMany(store, 20, { tag: 'p', aggregates: 5, inFlight: 5, from: produced });
        produced += 20;
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
    await new Promise((r) => setTimeout(r, 1500));
    // One replica goes away mid-stream; the others carry on.
    await runners[0]!.stop();
    await new Promise((r) => setTimeout(r, 500));
    producing = false;
    await producer;

    const last = await store.lastSequence();
    await Promise.all(runners.slice(1).map((r) => r.waitFor(last, 30_000)));
    assert.deepEqual(errors, []);
    await assertExactlyOnce(db, store, 'counts');
    // A single write through any replica is visible to every replica's waitFor (read-your-writes).
    const one = await appendMany(store, 1, { tag: 'solo' });
    await Promise.all(runners.slice(1).map((r) => r.waitFor(one, 5_000)));

    for (const r of runners) await r.stop();
    assert.deepEqual(await consumerNames(), [], 'stopped runners remove their consumers');
  });
});
