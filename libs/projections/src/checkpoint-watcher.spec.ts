import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { EventStore } from '#libs/eventstore';
import { connectNats, type NatsConnection } from '#libs/nats';
import { createTestEnvironment, untypedDb, type TestEnvironment } from '#libs/testing';
import { CheckpointWatcher } from './checkpoint-watcher.js';
import { projectionMigrations } from './migrations.js';
import { ProjectionRunner } from './runner.js';
import { countingMigrations, countingProjection, countingRegistry } from './testing/counting.js';
import { appendMany, cp, type TestDb } from './testing/helpers.js';

describe('CheckpointWatcher: read-your-writes across processes (real JetStream + Postgres)', () => {
  let env: TestEnvironment;
  let store: EventStore;
  let db: TestDb;
  let other: NatsConnection;

  before(async () => {
    env = await createTestEnvironment();
    store = env.newStore(countingRegistry());
    await store.ensureStream();
    await env.migrate([projectionMigrations, countingMigrations('public')]);
    db = env.newDb();
    // The waiting side has a connection of its own, as another process would.
    other = await connectNats({ url: env.natsUrl, name: 'watcher' });
  });
  after(async () => {
    await other.close();
    await env.close();
  });

  it("resolves on the runner's announcement, long before its database poll would", async () => {
    const runner = new ProjectionRunner(store, untypedDb(db), countingProjection());
    await runner.start();
    try {
      const watcher = new CheckpointWatcher(other, cp(db), store.prefix, 60_000);
      await watcher.waitFor('counts', 0); // subscribes
      const seq = await appendMany(store, 5, { tag: 'w' });
      const t0 = Date.now();
      await watcher.waitFor('counts', seq, 10_000);
      assert.ok(Date.now() - t0 < 5_000, 'announced, not polled (the poll is every 60 s here)');
      await watcher.waitFor('counts', seq); // known now: at once
    } finally {
      await runner.stop();
    }
  });

  it('falls back to the checkpoint table when no announcement comes, and times out with a clear error', async () => {
    const watcher = new CheckpointWatcher(other, cp(db), store.prefix, 20);
    const at = Number(
      (
        await db
          .selectFrom('projection_checkpoints')
          .select('stream_seq')
          .where('name', '=', 'counts')
          .executeTakeFirst()
      )?.stream_seq ?? 0,
    );
    const waiting = watcher.waitFor('counts', at + 1_000, 10_000);
    await new Promise((r) => setTimeout(r, 100));
    await db
      .updateTable('projection_checkpoints')
      .set({ stream_seq: at + 1_000 })
      .where('name', '=', 'counts')
      .execute();
    await waiting;
    await assert.rejects(
      watcher.waitFor('counts', at + 5_000, 200),
      /projection counts did not reach \d+ within 200 ms/,
    );
  });
});
