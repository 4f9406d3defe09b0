import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { z } from 'zod';
import { createTestEnvironment, type TestEnvironment } from '#libs/testing';
import { connectNats } from '#libs/nats';
import {
  ConcurrencyError,
  defineEvent,
  EventRegistry,
  EventSchemaError,
  EventStore,
  CommandHandler,
  type Decider,
} from './index.js';

const Incremented = defineEvent('Incremented', z.object({ by: z.number().int().positive() }));
// Version 2 of Renamed added `reason`; version 1 payloads are upcast on read.
const Renamed = defineEvent('Renamed', z.object({ name: z.string().min(1), reason: z.string() }), {
  version: 2,
  upcasters: { 1: (d) => ({ ...(d as object), reason: 'unknown' }) },
});
const registry = () => new EventRegistry().register(Incremented, Renamed);
type Ev =
  { type: 'Incremented'; data: { by: number } } | { type: 'Renamed'; data: { name: string; reason: string } };

const counter: Decider<number, { by: number }, Ev> = {
  initialState: () => 0,
  evolve: (s, e) => (e.type === 'Incremented' ? s + e.data.by : s),
  decide: (c) => [{ type: 'Incremented', data: { by: c.by } }],
};

describe('event store (real JetStream)', () => {
  let env: TestEnvironment;
  let store: EventStore;
  before(async () => {
    env = await createTestEnvironment();
    store = env.newStore(registry());
    await store.ensureStream();
  });
  after(() => env.close());

  it('creates the stream with the settings of the design, idempotently', async () => {
    await store.ensureStream();
    const info = await (await store.jsm()).streams.info(store.stream);
    assert.equal(info.config.deny_delete, true);
    assert.equal(info.config.deny_purge, false); // finished aggregates leave by subject purge (archive.ts)
    assert.equal(info.config.allow_direct, true);
    assert.ok(info.config.duplicate_window >= 10 * 60 * 1e9);
    assert.deepEqual(info.config.subjects, [store.allSubjects]);
  });

  it('writes one message per decision and reads events back in order', async () => {
    const ref = { workspaceId: 'w1', type: 'counter', id: 'c1' };
    const a = await store.append(
      ref,
      0,
      [
        { type: 'Incremented', data: { by: 1 } },
        { type: 'Incremented', data: { by: 2 } },
      ],
      {
        commandId: 'c1-1',
        actor: 'tester',
      },
    );
    const b = await store.append(ref, a.seq, [{ type: 'Incremented', data: { by: 3 } }], {
      commandId: 'c1-2',
      actor: 'tester',
    });
    const read = await store.read(ref);
    assert.equal(read.commits.length, 2);
    assert.deepEqual(
      read.events.map((e) => e.data),
      [{ by: 1 }, { by: 2 }, { by: 3 }],
    );
    assert.deepEqual(
      read.events.map((e) => e.index),
      [0, 1, 0],
    );
    assert.equal(read.lastSeq, b.seq);
    assert.equal(read.events[0]!.actor, 'tester');
  });

  it('reads the commits of one aggregate after a sequence with direct gets, or null when too many are behind', async () => {
    const ref = { workspaceId: 'w1', type: 'counter', id: 'after-1' };
    const other = { workspaceId: 'w1', type: 'counter', id: 'after-2' };
    const seqs: number[] = [];
    let last = 0;
    let lastOther = 0;
    for (let i = 1; i <= 5; i++) {
      // Another aggregate's commits in between must not be returned.
      lastOther = (
        await store.append(other, lastOther, [{ type: 'Incremented', data: { by: 100 } }], {
          commandId: `after-2-${i}`,
          actor: 'tester',
        })
      ).seq;
      last = (
        await store.append(ref, last, [{ type: 'Incremented', data: { by: i } }], {
          commandId: `after-1-${i}`,
          actor: 'tester',
        })
      ).seq;
      seqs.push(last);
    }
    const r = await store.readAfter(ref, seqs[1]!);
    assert.ok(r);
    assert.deepEqual(
      r.commits.map((c) => c.seq),
      seqs.slice(2),
    );
    assert.deepEqual(
      r.events.map((e) => e.data),
      [{ by: 3 }, { by: 4 }, { by: 5 }],
    );
    assert.equal(r.lastSeq, seqs[4]);
    const none = await store.readAfter(ref, seqs[4]!);
    assert.deepEqual(none, { commits: [], events: [], lastSeq: seqs[4] });
    assert.equal(await store.readAfter(ref, 0, 3), null, 'five behind, three allowed');
    assert.equal((await store.readAfter({ ...ref, id: 'never-written' }, 0))?.commits.length, 0);
  });

  it('reads a long aggregate whole, in order, across several batched direct gets, and creates no consumer', async () => {
    const ref = { workspaceId: 'w1', type: 'counter', id: 'long-1' };
    const other = { workspaceId: 'w1', type: 'counter', id: 'long-2' };
    const n = 600; // more than two batches of 256
    let last = 0;
    let lastOther = 0;
    const seqs: number[] = [];
    for (let i = 1; i <= n; i++) {
      last = (
        await store.append(ref, last, [{ type: 'Incremented', data: { by: i } }], {
          commandId: `long-1-${i}`,
          actor: 'tester',
        })
      ).seq;
      seqs.push(last);
      if (i % 3 === 0) {
        lastOther = (
          await store.append(other, lastOther, [{ type: 'Incremented', data: { by: 1 } }], {
            commandId: `long-2-${i}`,
            actor: 'tester',
          })
        ).seq;
      }
    }
    const jsm = await store.jsm();
    const consumersBefore = (await jsm.streams.info(store.stream)).state.consumer_count;
    const r = await store.read(ref);
    assert.deepEqual(
      r.commits.map((c) => c.seq),
      seqs,
    );
    assert.deepEqual(
      r.events.map((e) => e.data),
      Array.from({ length: n }, (_, i) => ({ by: i + 1 })),
    );
    assert.equal(r.lastSeq, seqs.at(-1));
    assert.equal((await jsm.streams.info(store.stream)).state.consumer_count, consumersBefore);
    assert.deepEqual(await store.read({ ...ref, id: 'never-written' }), {
      commits: [],
      events: [],
      lastSeq: 0,
    });
    // The handler's read-decide-append works on it: the next append expects the last commit read.
    const next = await new CommandHandler(store, counter).handle(
      ref,
      { by: 1 },
      { commandId: 'long-1-next', actor: 'tester' },
    );
    assert.ok(next.seq > last);
    assert.equal(next.state, (n * (n + 1)) / 2 + 1);
    assert.equal(next.duplicate, false);
  });
  it('lets exactly one of 50 concurrent appends with the same expected sequence succeed', async () => {
    const ref = { workspaceId: 'w1', type: 'counter', id: 'race' };
    const results = await Promise.allSettled(
      Array.from({ length: 50 }, (_, i) =>
        store.append(ref, 0, [{ type: 'Incremented', data: { by: 1 } }], {
          commandId: `race-${i}`,
          actor: 't',
        }),
      ),
    );
    const ok = results.filter((r) => r.status === 'fulfilled');
    const conflicts = results.filter((r) => r.status === 'rejected' && r.reason instanceof ConcurrencyError);
    assert.equal(ok.length, 1);
    assert.equal(conflicts.length, 49);
    assert.equal((await store.read(ref)).events.length, 1);
  });

  it('stores a command retried with the same id once and returns the original position', async () => {
    const ref = { workspaceId: 'w1', type: 'counter', id: 'idem' };
    const first = await store.append(ref, 0, [{ type: 'Incremented', data: { by: 5 } }], {
      commandId: 'same',
      actor: 't',
    });
    const again = await store.append(ref, 0, [{ type: 'Incremented', data: { by: 5 } }], {
      commandId: 'same',
      actor: 't',
    });
    assert.equal(again.duplicate, true);
    assert.equal(again.seq, first.seq);
    // Through the handler: a retried command returns the original result, even after the aggregate moved on.
    const h1 = await new CommandHandler(store, counter).handle(
      ref,
      { by: 7 },
      { commandId: 'h-1', actor: 't' },
    );
    await new CommandHandler(store, counter).handle(ref, { by: 1 }, { commandId: 'h-2', actor: 't' });
    const h1again = await new CommandHandler(store, counter).handle(
      ref,
      { by: 7 },
      { commandId: 'h-1', actor: 't' },
    );
    assert.equal(h1again.duplicate, true);
    assert.deepEqual(h1again.events, h1.events);
    const read = await store.read(ref);
    assert.deepEqual(
      read.events.map((e) => e.data),
      [{ by: 5 }, { by: 7 }, { by: 1 }],
    );
  });

  it('retries a handler on conflict so concurrent commands all land', async () => {
    const ref = { workspaceId: 'w1', type: 'counter', id: 'retry' };
    await Promise.all(
      Array.from({ length: 8 }, (_, i) =>
        new CommandHandler(store, counter, { maxRetries: 20 }).handle(
          ref,
          { by: 1 },
          { commandId: `r-${i}`, actor: 't' },
        ),
      ),
    );
    const read = await store.read(ref);
    assert.equal(
      read.events.reduce((s, e) => s + (e.data as { by: number }).by, 0),
      8,
    );
  });

  it('refuses an event that fails its schema, or an unknown type, with a clear error and writes nothing', async () => {
    const ref = { workspaceId: 'w1', type: 'counter', id: 'bad' };
    await assert.rejects(
      store.append(ref, 0, [{ type: 'Incremented', data: { by: -1 } }], { commandId: 'bad-1', actor: 't' }),
      (err: unknown) =>
        err instanceof EventSchemaError && /Incremented/.test(err.message) && /by/.test(err.message),
    );
    await assert.rejects(
      store.append(ref, 0, [{ type: 'Nope', data: {} }], { commandId: 'bad-2', actor: 't' }),
      /unknown event type/,
    );
    assert.equal((await store.read(ref)).lastSeq, 0);
  });

  it('upcasts old event versions on read', async () => {
    const ref = { workspaceId: 'w1', type: 'thing', id: 'old' };
    // Write a version-1 payload as an older release would have.
    const legacy = new EventRegistry().register(defineEvent('Renamed', z.object({ name: z.string() })));
    const oldStore = new EventStore(env.nats, legacy, {
      stream: env.stream,
      subjectPrefix: env.subjectPrefix,
    });
    await oldStore.append(ref, 0, [{ type: 'Renamed', data: { name: 'x' } }], {
      commandId: 'old-1',
      actor: 't',
    });
    const read = await store.read(ref);
    assert.deepEqual(read.events[0]!.data, { name: 'x', reason: 'unknown' });
  });

  it('replays from a sequence and filters by aggregate type', async () => {
    const all = [];
    for await (const c of store.replay({ fromSeq: 1 })) all.push(c);
    assert.ok(all.length >= 5);
    assert.deepEqual(
      all.map((c) => c.seq),
      [...all.map((c) => c.seq)].sort((a, b) => a - b),
    );
    const things = [];
    for await (const c of store.replay({ fromSeq: 1, aggregateType: 'thing' })) things.push(c);
    assert.equal(things.length, 1);
    const fromTime = [];
    for await (const c of store.replay({ fromTime: new Date(Date.now() + 60_000) })) fromTime.push(c);
    assert.equal(fromTime.length, 0);
  });
});

describe('event store across a nats-server restart', () => {
  it('reconnects and loses no acknowledged event', async () => {
    const env = await createTestEnvironment({ ownNats: true });
    try {
      const nc = await connectNats({ url: env.natsUrl, name: 'producer' });
      const store = new EventStore(nc, registry(), { stream: env.stream, subjectPrefix: env.subjectPrefix });
      await store.ensureStream();
      const acked = new Set<string>();
      let stop = false;
      const producer = (async () => {
        let n = 0;
        while (!stop) {
          const id = `a${n++}`;
          try {
            await store.append(
              { workspaceId: 'w', type: 'counter', id },
              0,
              [{ type: 'Incremented', data: { by: 1 } }],
              {
                commandId: id,
                actor: 't',
              },
            );
            acked.add(id);
          } catch {
            await new Promise((r) => setTimeout(r, 50));
          }
        }
      })();
      await new Promise((r) => setTimeout(r, 300));
      await env.natsServer!.restart();
      await new Promise((r) => setTimeout(r, 1500));
      stop = true;
      await producer;
      assert.ok(acked.size > 10, `producer made progress (${acked.size})`);
      const stored = new Set<string>();
      for await (const c of store.replay({ fromSeq: 1 })) stored.add(c.aggregate.id);
      for (const id of acked) assert.ok(stored.has(id), `acknowledged ${id} is missing after the restart`);
      await nc.close();
    } finally {
      await env.close();
    }
  });
});
