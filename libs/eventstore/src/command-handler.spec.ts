import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { z } from 'zod';
import { createTestEnvironment, type TestEnvironment } from '#libs/testing';
import {
  CommandHandler,
  ConcurrencyError,
  defineEvent,
  EventRegistry,
  KeyedLock,
  type AggregateRef,
  type Decider,
  type EventStore,
  type SnapshotStore,
  type StateAt,
} from './index.js';

const Added = defineEvent('Added', z.object({ by: z.number().int() }));
type Ev = { type: 'Added'; data: { by: number } };
/** A tally: adds what a command says; `{ by: 0 }` decides nothing. */
const tally: Decider<number, { by: number }, Ev> = {
  initialState: () => 0,
  evolve: (s, e) => s + e.data.by,
  decide: (c) => (c.by === 0 ? [] : [{ type: 'Added', data: { by: c.by } }]),
};

/** Snapshots kept in this process (the interface a table of snapshots implements). */
class MemorySnapshots implements SnapshotStore<number> {
  readonly saved = new Map<string, StateAt<number>>();
  loads = 0;
  constructor(readonly everyCommits?: number) {}
  load(ref: AggregateRef): Promise<StateAt<number> | undefined> {
    this.loads++;
    return Promise.resolve(this.saved.get(ref.id));
  }
  save(ref: AggregateRef, state: number, lastSeq: number): Promise<void> {
    this.saved.set(ref.id, { state, lastSeq });
    return Promise.resolve();
  }
}

describe('CommandHandler (real JetStream)', () => {
  let env: TestEnvironment;
  let store: EventStore;
  let n = 0;
  const ref = (): AggregateRef => ({ workspaceId: 'w', type: 'tally', id: `t${++n}` });
  const meta = (commandId: string) => ({ commandId, actor: 'tester' });

  before(async () => {
    env = await createTestEnvironment();
    store = env.newStore(new EventRegistry().register(Added));
    await store.ensureStream();
  });
  after(() => env.close());

  it('retries on a conflict: commands of two processes on one aggregate all land', async () => {
    const agg = ref();
    // Two handlers are two processes: only the expected-sequence check orders them.
    const a = new CommandHandler(store, tally, { maxRetries: 30, cache: {} });
    const b = new CommandHandler(store, tally, { maxRetries: 30 });
    await Promise.all(
      Array.from({ length: 12 }, (_, i) => (i % 2 ? a : b).handle(agg, { by: 1 }, meta(`c-${i}`))),
    );
    assert.equal((await store.read(agg)).events.length, 12);
    assert.equal((await a.load(agg)).state, 12);
    assert.equal((await b.load(agg)).state, 12);
  });

  it('surfaces the ConcurrencyError once its retries are spent', async () => {
    const agg = ref();
    const stale = new CommandHandler(store, tally, { maxRetries: 0, cache: {} });
    await stale.handle(agg, { by: 1 }, meta('s-1'));
    // Another process writes twice: the cached entry is behind, but trusted by an optimistic command.
    await store.append(
      agg,
      (await store.read(agg)).lastSeq,
      [{ type: 'Added', data: { by: 1 } }],
      meta('x-1'),
    );
    await assert.rejects(
      stale.handle(agg, { by: 1 }, meta('s-2'), { optimistic: true }),
      (err: unknown) => err instanceof ConcurrencyError,
    );
    // The next command reads the aggregate afresh and lands.
    const r = await stale.handle(agg, { by: 1 }, meta('s-3'));
    assert.equal(r.state, 3);
  });

  it('answers a command id already handled with its original result, from memory, history or the stream', async () => {
    const agg = ref();
    const h = new CommandHandler(store, tally, { cache: { maxCommands: 2 } });
    const first = await h.handle(agg, { by: 5 }, meta('d-1'));
    for (let i = 2; i <= 4; i++) await h.handle(agg, { by: 1 }, meta(`d-${i}`));
    // Remembered (one of the latest 2): nothing decided, nothing written.
    const recent = await h.handle(agg, { by: 100 }, meta('d-4'));
    assert.deepEqual([recent.duplicate, recent.events], [true, [{ type: 'Added', data: { by: 1 } }]]);
    // Forgotten by the cache: the stream's duplicate window names the original commit.
    const old = await h.handle(agg, { by: 100 }, meta('d-1'));
    assert.equal(old.duplicate, true);
    assert.deepEqual(old.events, first.events);
    assert.equal(old.seq, first.seq);
    // Without a cache: the aggregate's history holds it.
    const fresh = await new CommandHandler(store, tally).handle(agg, { by: 100 }, meta('d-1'));
    assert.deepEqual([fresh.duplicate, fresh.events, fresh.state], [true, first.events, 8]);
    assert.equal((await store.read(agg)).events.length, 4, 'nothing written twice');
  });

  it('catches a cached state up with a write of another process, and decides on it', async () => {
    const agg = ref();
    const h = new CommandHandler(store, tally, { cache: {} });
    const r1 = await h.handle(agg, { by: 1 }, meta('f-1'));
    await store.append(agg, r1.seq, [{ type: 'Added', data: { by: 10 } }], meta('foreign'));
    const r2 = await h.handle(agg, { by: 1 }, meta('f-2'));
    assert.equal(r2.state, 12);
    assert.equal(r2.duplicate, false);
    // An optimistic command decides on the cached state; its append conflicts and it decides again.
    const last = (await store.read(agg)).lastSeq;
    await store.append(agg, last, [{ type: 'Added', data: { by: 100 } }], meta('foreign-2'));
    const r3 = await h.handle(agg, { by: 1 }, meta('f-3'), { optimistic: true });
    assert.equal(r3.state, 113);
    // "Nothing to do" on a trusted cached state is confirmed against the stream.
    const r4 = await h.handle(agg, { by: 0 }, meta('f-4'), { optimistic: true });
    assert.deepEqual([r4.events, r4.state, r4.seq], [[], 113, r3.seq]);
  });

  it('starts from a snapshot and reads only the commits after it; saves one every N commits', async () => {
    const agg = ref();
    const writer = new CommandHandler(store, tally);
    let seqAt3 = 0;
    for (let i = 1; i <= 5; i++) {
      const r = await writer.handle(agg, { by: 1 }, meta(`p-${i}`));
      if (i === 3) seqAt3 = r.seq;
    }
    // A snapshot at the third commit whose state says 1000: only a load that starts from it ends at 1002.
    const snapshots = new MemorySnapshots(2);
    snapshots.saved.set(agg.id, { state: 1000, lastSeq: seqAt3 });
    const h = new CommandHandler(store, tally, { cache: {}, snapshots });
    assert.equal((await h.load(agg)).state, 1002);
    const r = await h.handle(agg, { by: 1 }, meta('p-6'));
    assert.equal(r.state, 1003);
    // Three commits folded since the snapshot (two read, one written): a new one was saved.
    assert.deepEqual(snapshots.saved.get(agg.id), { state: 1003, lastSeq: r.seq });
    assert.deepEqual(h.changedSinceSnapshot(), []);
  });

  it('drops a snapshot the stream does not confirm (at a sequence past the aggregate) after a conflict', async () => {
    const agg = ref();
    const r = await new CommandHandler(store, tally).handle(agg, { by: 1 }, meta('q-1'));
    const snapshots = new MemorySnapshots();
    snapshots.saved.set(agg.id, { state: 500, lastSeq: r.seq + 1_000_000 });
    const h = new CommandHandler(store, tally, { snapshots, maxRetries: 3 });
    const next = await h.handle(agg, { by: 1 }, meta('q-2'));
    assert.equal(next.state, 2, 'decided on the stream, not on the snapshot');
  });

  it('serializes commands per aggregate in this process (no conflict to retry), and not across aggregates', async () => {
    const agg = ref();
    const h = new CommandHandler(store, tally, { maxRetries: 0 });
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, i) => h.handle(agg, { by: 1 }, meta(`k-${i}`))),
    );
    assert.deepEqual(
      results.map((r) => r.state).sort((x, y) => x - y),
      Array.from({ length: 20 }, (_, i) => i + 1),
    );
    // The lock: one key waits for the work before it, another does not.
    const lock = new KeyedLock();
    const order: string[] = [];
    let release!: () => void;
    const held = lock.run('a', () =>
      new Promise<void>((r) => (release = r)).then(() => void order.push('a1')),
    );
    const queued = lock.run('a', () => Promise.resolve(void order.push('a2')));
    await lock.run('b', () => Promise.resolve(void order.push('b')));
    release();
    await Promise.all([held, queued]);
    assert.deepEqual(order, ['b', 'a1', 'a2']);
    // A failed task does not stop the next one.
    await assert.rejects(
      lock.run('c', () => Promise.reject(new Error('boom'))),
      /boom/,
    );
    assert.equal(await lock.run('c', () => Promise.resolve(7)), 7);
    await new Promise((r) => setImmediate(r)); // the tails are dropped once settled
    assert.equal(lock.size, 0, 'no key kept after its work');
  });

  it('keeps at most maxEntries aggregates in memory, the least recently used dropped', async () => {
    const [x, y, z] = [ref(), ref(), ref()];
    const h = new CommandHandler(store, tally, { cache: { maxEntries: 2 } });
    await h.handle(x, { by: 1 }, meta('l-x'));
    await h.handle(y, { by: 1 }, meta('l-y'));
    await h.handle(x, { by: 1 }, meta('l-x2')); // x used last: y is the oldest
    await h.handle(z, { by: 1 }, meta('l-z'));
    assert.deepEqual([h.has(x), h.has(y), h.has(z)], [true, false, true]);
    // A dropped aggregate is read again when needed.
    assert.equal((await h.handle(y, { by: 1 }, meta('l-y2'))).state, 2);
    assert.deepEqual([h.has(x), h.has(y), h.has(z)], [false, true, true]);
  });

  it('primes the cache from one replay and from snapshots', async () => {
    const [x, y] = [ref(), ref()];
    const w = new CommandHandler(store, tally);
    const rx = await w.handle(x, { by: 2 }, meta('r-x'));
    await w.handle(y, { by: 3 }, meta('r-y'));
    await w.handle(x, { by: 4 }, meta('r-x2'));
    const h = new CommandHandler(store, tally, { cache: {} });
    const primed = await h.prime(
      store.replay({ aggregateType: 'tally' }),
      (r) => r.id === x.id || r.id === y.id,
      [{ ref: x, state: 100, lastSeq: rx.seq }],
    );
    assert.equal(primed, 2);
    assert.equal((await h.load(x)).state, 104, 'x continued from its start entry');
    assert.equal((await h.load(y)).state, 3);
    assert.equal(h.changedSinceSnapshot().length, 2);
    h.markSnapshotted(h.changedSinceSnapshot());
    assert.deepEqual(h.changedSinceSnapshot(), []);
  });
});
