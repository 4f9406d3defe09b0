import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { z } from 'zod';
import { connectNats } from '#libs/nats';
import { createTestEnvironment, type TestEnvironment } from '#libs/testing';
import {
  CommandHandler,
  commandIdFor,
  defineEvent,
  EventRegistry,
  reactionMeta,
  reactorDurableName,
  startReactor,
  type AggregateRef,
  type Decider,
  type EventStore,
  type ReactorEvent,
} from './index.js';

const Ordered = defineEvent('Ordered', z.object({ n: z.number().int().nonnegative() }));
const Noted = defineEvent('Noted', z.object({ text: z.string() }));
const Counted = defineEvent('Counted', z.object({ n: z.number().int() }));
const registry = () => new EventRegistry().register(Ordered, Noted, Counted);

/** The aggregate reactions write to: counts each order once per command id. */
type CountEv = { type: 'Counted'; data: { n: number } };
const counter: Decider<number[], { n: number }, CountEv> = {
  initialState: () => [],
  evolve: (s, e) => [...s, e.data.n],
  decide: (c) => [{ type: 'Counted', data: { n: c.n } }],
};

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function until(what: string, check: () => boolean | Promise<boolean>, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(25);
  }
}

describe('reactor (real JetStream)', () => {
  let env: TestEnvironment;
  let store: EventStore;
  let seq = 0;
  const order = (id: string): AggregateRef => ({ workspaceId: 'w', type: 'order', id });
  /** Appends Ordered events on a fresh aggregate of type `type` (one commit). */
  const place = async (type: string, ...ns: number[]) => {
    const ref = { workspaceId: 'w', type, id: `a${++seq}` };
    return store.append(
      ref,
      0,
      ns.map((n) => ({ type: 'Ordered', data: { n } })),
      { commandId: `place-${seq}`, actor: 'tester' },
    );
  };

  before(async () => {
    env = await createTestEnvironment();
    store = env.newStore(registry());
    await store.ensureStream();
  });
  after(() => env.close());

  it('names its durable consumer per subject prefix, and refuses a bad name', () => {
    assert.equal(reactorDurableName(store, 'count-orders'), `${env.subjectPrefix}_reactor_count-orders`);
    assert.throws(() => reactorDurableName(store, 'Count_Orders'), /must match/);
  });

  it('reacts to the wanted events of the wanted aggregates, in order, with their identity', async () => {
    const first = await place('order', 1, 2);
    await store.append(order('noted'), 0, [{ type: 'Noted', data: { text: 'skipped: not wanted' } }], {
      commandId: 'note',
      actor: 'tester',
      correlationId: 'corr-1',
    });
    await place('other', 99); // another aggregate type: not even delivered
    await place('order', 3);
    const seen: ReactorEvent[] = [];
    const r = await startReactor({
      name: 'in-order',
      store,
      eventTypes: ['Ordered'],
      aggregateTypes: ['order'],
      react: async (e) => void seen.push(e),
    });
    try {
      await until('three events', () => seen.length >= 3);
      await place('order', 4);
      await until('the fourth, published after the start', () => seen.length >= 4);
      assert.deepEqual(
        seen.map((e) => (e.data as { n: number }).n),
        [1, 2, 3, 4],
      );
      const e0 = seen[0]!;
      assert.deepEqual(
        [e0.ref.type, e0.seq, e0.index, e0.causationId],
        ['order', first.seq, 0, `${first.seq}:0`],
      );
      assert.equal(seen[1]!.index, 1);
      assert.equal(e0.meta.actor, 'tester');
      assert.equal(commandIdFor('in-order', e0), `in-order:${first.seq}:0`);
      const m = reactionMeta('in-order', e0);
      assert.deepEqual(m, {
        commandId: `in-order:${first.seq}:0`,
        actor: 'reactor:in-order',
        correlationId: e0.meta.correlationId,
        causationId: `${first.seq}:0`,
      });
    } finally {
      await r.stop();
    }
    const ci = await (await store.jsm()).consumers.info(store.stream, reactorDurableName(store, 'in-order'));
    assert.deepEqual(ci.config.filter_subject, store.filterSubject({ aggregateType: 'order' }));
    assert.equal(ci.num_ack_pending, 0);
  });

  it('is idempotent through commandIdFor when a reaction is redelivered after a crash', async () => {
    const name = 'count-orders';
    const tallyRef = { workspaceId: 'w', type: 'tally', id: 'crash' };
    const placed = await place('crash', 7);
    // Process A: its reaction lands the command, then the process dies before the ack.
    const ncA = await connectNats({ url: env.natsUrl, name: 'reactor-a' });
    const storeA = env.newStore(registry(), ncA);
    const handlerA = new CommandHandler(storeA, counter);
    let landed = false;
    let crash!: (err: Error) => void;
    const a = await startReactor({
      name,
      store: storeA,
      eventTypes: ['Ordered'],
      aggregateTypes: ['crash'],
      ackWaitMs: 1_500,
      react: async (e) => {
        await handlerA.handle(tallyRef, { n: (e.data as { n: number }).n }, reactionMeta(name, e));
        landed = true;
        await new Promise<never>((_, reject) => (crash = reject));
      },
    });
    await until('the reaction of A landed', () => landed);
    await ncA.close();
    crash(new Error('process A is gone'));
    await a.stop();
    // Process B: gets the commit again after ack_wait; the same command id finds the original.
    const handlerB = new CommandHandler(store, counter);
    const results: boolean[] = [];
    const b = await startReactor({
      name,
      store,
      eventTypes: ['Ordered'],
      aggregateTypes: ['crash'],
      react: async (e) => {
        const r = await handlerB.handle(tallyRef, { n: (e.data as { n: number }).n }, reactionMeta(name, e));
        results.push(r.duplicate);
      },
    });
    try {
      await until('the redelivery to B', () => results.length >= 1);
      assert.deepEqual(results, [true]);
      const { events } = await store.read(tallyRef);
      assert.equal(events.length, 1, 'counted once');
      assert.equal(events[0]!.causationId, `${placed.seq}:0`);
    } finally {
      await b.stop();
    }
  });

  it('retries a failed reaction with a delay, and lets replicas with the same name share the work', async () => {
    const name = 'shared';
    const got: Record<'a' | 'b', number[]> = { a: [], b: [] };
    let failedOnce = false;
    const react = (who: 'a' | 'b') => async (e: ReactorEvent) => {
      const n = (e.data as { n: number }).n;
      if (n === 0 && !failedOnce) {
        failedOnce = true;
        throw new Error('transient');
      }
      await sleep(20);
      got[who].push(n);
    };
    const opts = {
      name,
      store,
      eventTypes: ['Ordered'],
      aggregateTypes: ['shared'],
      batch: 1,
      retryDelayMs: 100,
    };
    const logs: string[] = [];
    const a = await startReactor({ ...opts, react: react('a'), log: (m) => logs.push(m) });
    const b = await startReactor({ ...opts, react: react('b'), log: (m) => logs.push(m) });
    try {
      for (let i = 0; i < 30; i++) await place('shared', i);
      await until('all 30', () => got.a.length + got.b.length >= 30);
      await sleep(300);
      const all = [...got.a, ...got.b].sort((x, y) => x - y);
      assert.deepEqual(
        all,
        Array.from({ length: 30 }, (_, i) => i),
        'each once',
      );
      assert.ok(got.a.length > 0 && got.b.length > 0, `both worked (${got.a.length}/${got.b.length})`);
      assert.ok(
        logs.some((l) => /failed \(retried in 100 ms\): transient/.test(l)),
        logs.join('\n'),
      );
    } finally {
      await Promise.all([a.stop(), b.stop()]);
    }
  });

  it('pulls only while it has capacity', async () => {
    let free = 2;
    const taken: number[] = [];
    const r = await startReactor({
      name: 'slots',
      store,
      eventTypes: ['Ordered'],
      aggregateTypes: ['slots'],
      capacity: () => free,
      react: async (e) => {
        free--;
        taken.push((e.data as { n: number }).n);
      },
    });
    try {
      for (let i = 0; i < 5; i++) await place('slots', i);
      await until('two taken', () => taken.length >= 2);
      await sleep(700);
      assert.equal(taken.length, 2, 'no slot, no pull');
      free++;
      r.wake();
      await until('a third once a slot is free', () => taken.length >= 3);
      await sleep(500);
      assert.equal(taken.length, 3);
      free += 5;
      await until('the rest', () => taken.length >= 5);
      assert.deepEqual(
        [...taken].sort((x, y) => x - y),
        [0, 1, 2, 3, 4],
      );
    } finally {
      await r.stop();
    }
  });

  it('logs and passes over a commit it cannot decode, and goes on', async () => {
    const logs: string[] = [];
    const seen: number[] = [];
    await place('junk', 1);
    // Not JSON, on a subject of the stream.
    await store.js.publish(`${store.prefix}evt.w.junk.garbage`, 'not json at all');
    // A valid envelope whose wanted event fails its schema.
    await store.js.publish(
      `${store.prefix}evt.w.junk.bad`,
      JSON.stringify({
        v: 1,
        aggregate: { workspaceId: 'w', type: 'junk', id: 'bad' },
        events: [{ type: 'Ordered', version: 1, data: { n: -5 } }],
        meta: { commandId: 'bad', actor: 'x', correlationId: 'bad', time: new Date().toISOString() },
      }),
    );
    await place('junk', 2);
    const r = await startReactor({
      name: 'junk',
      store,
      eventTypes: ['Ordered'],
      aggregateTypes: ['junk'],
      log: (m) => logs.push(m),
      react: async (e) => void seen.push((e.data as { n: number }).n),
    });
    try {
      await until('both good commits', () => seen.length >= 2);
      assert.deepEqual(seen, [1, 2]);
      assert.equal(logs.filter((l) => /cannot be decoded, passed over/.test(l)).length, 2, logs.join('\n'));
      const ci = await (await store.jsm()).consumers.info(store.stream, reactorDurableName(store, 'junk'));
      assert.equal(ci.num_ack_pending, 0);
      assert.equal(ci.num_pending, 0);
    } finally {
      await r.stop();
    }
  });

  it('stop waits for the reaction in flight, which is acked, not redelivered', async () => {
    let started = false;
    let finished = false;
    const seen: number[] = [];
    const opts = {
      name: 'drain',
      store,
      eventTypes: ['Ordered'],
      aggregateTypes: ['drain'],
      ackWaitMs: 1_000,
    };
    const r = await startReactor({
      ...opts,
      react: async (e) => {
        started = true;
        await sleep(500);
        seen.push((e.data as { n: number }).n);
        finished = true;
      },
    });
    await place('drain', 1);
    await until('the reaction started', () => started);
    await r.stop();
    assert.equal(finished, true, 'stop returned after the reaction');
    // A new start with the same name: nothing is delivered again (the commit was acked).
    const again: number[] = [];
    const r2 = await startReactor({
      ...opts,
      react: async (e) => void again.push((e.data as { n: number }).n),
    });
    try {
      await place('drain', 2);
      await until('the next one', () => again.length >= 1);
      await sleep(1_500);
      assert.deepEqual([seen, again], [[1], [2]]);
    } finally {
      await r2.stop();
    }
  });

  it('a new durable with startAt "new" skips what was there', async () => {
    await place('late', 1);
    const seen: number[] = [];
    const r = await startReactor({
      name: 'late',
      store,
      eventTypes: ['Ordered'],
      aggregateTypes: ['late'],
      startAt: 'new',
      react: async (e) => void seen.push((e.data as { n: number }).n),
    });
    try {
      await place('late', 2);
      await until('the new one', () => seen.length >= 1);
      await sleep(300);
      assert.deepEqual(seen, [2]);
    } finally {
      await r.stop();
    }
  });
});
