import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { AckPolicy, DeliverPolicy } from '@nats-io/jetstream';
import type { EventStore } from '#libs/eventstore';
import { createTestEnvironment, untypedDb, type TestEnvironment } from '#libs/testing';
import { ProjectionLocks } from './leader.js';
import { projectionMigrations } from './migrations.js';
import { ProjectionRunner } from './runner.js';
import { countingMigrations, countingProjection, countingRegistry } from './testing/counting.js';
import { appendMany, assertExactlyOnce, type TestDb } from './testing/helpers.js';

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
      const r = new ProjectionRunner(store, untypedDb(db), countingProjection({ sleepMs: 5 }), {
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

  it('with leadership locks: one replica consumes, the others stand by and follow its checkpoint, and one takes over when it loses its session or stops', async () => {
    const errors: unknown[] = [];
    const locks = Array.from({ length: 3 }, () => new ProjectionLocks(env.databaseUrl));
    const replicas = locks.map(
      (l) =>
        new ProjectionRunner(store, untypedDb(db), countingProjection({ sleepMs: 2 }), {
          batchSize: 50,
          locks: l,
          standbyMs: 200,
          onError: (e) => {
            if (!/leadership|killed|terminat/i.test(String(e))) errors.push(e);
          },
        }),
    );
    for (const r of replicas) {
      runners.push(r);
      await r.start();
    }
    const activeOnes = () => replicas.filter((r) => r.active && r.position >= 0);
    assert.equal(activeOnes().length, 1, 'exactly one active replica');
    // Only the active one has a consumer: the standbys cost no deliveries and no transactions.
    assert.deepEqual(await consumerNames(), [activeOnes()[0]!.durableName]);

    let producing = true;
    let produced = 0;
    const producer = (async () => {
      while (producing) {
        await appendMany(store, 20, { tag: 'q', aggregates: 5, inFlight: 5, from: produced });
        produced += 20;
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
    const takeOver = async (what: string) => {
      const t0 = Date.now();
      for (;;) {
        const a = replicas.filter((r) => r.active);
        if (a.length === 1 && (await consumerNames()).length === 1) return Date.now() - t0;
        if (Date.now() - t0 > 5_000) throw new Error(`${what}: ${a.length} active replicas after 5 s`);
        await new Promise((r) => setTimeout(r, 25));
      }
    };
    await new Promise((r) => setTimeout(r, 800));
    // The active replica's database session ends (as when its process dies): another one leads.
    const first = replicas.findIndex((r) => r.active);
    await locks[first]!.kill();
    const afterKill = await takeOver('after the session ended');
    await new Promise((r) => setTimeout(r, 800));
    // A clean stop hands over at once.
    const second = replicas.findIndex((r) => r.active);
    await replicas[second]!.stop();
    const afterStop = await takeOver('after a stop');
    await new Promise((r) => setTimeout(r, 500));
    producing = false;
    await producer;

    const last = await store.lastSequence();
    const running = replicas.filter((_, i) => i !== second);
    // Standbys follow the active one's checkpoint: waitFor (read-your-writes) works on every replica.
    await Promise.all(running.map((r) => r.waitFor(last, 30_000)));
    assert.deepEqual(errors, []);
    await assertExactlyOnce(db, store, 'counts');
    assert.equal(replicas.filter((r) => r.active).length, 1);
    assert.ok(replicas.reduce((n, r) => n + r.stats.activations, 0) >= 3, 'the lead moved twice');
    console.log(
      `projection take-over: ${afterKill} ms after the session ended, ${afterStop} ms after a stop`,
    );
    assert.ok(afterKill < 3_000 && afterStop < 3_000, `take-overs after ${afterKill} ms and ${afterStop} ms`);
    const one = await appendMany(store, 1, { tag: 'solo2' });
    await Promise.all(running.map((r) => r.waitFor(one, 5_000)));
    for (const r of running) await r.stop();
    for (const l of locks) await l.close();
    assert.deepEqual(await consumerNames(), []);
  });
});
