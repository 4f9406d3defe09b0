import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { headers } from '@nats-io/transport-node';
import { z } from 'zod';
import { createTestEnvironment, type TestEnvironment } from '#libs/testing';
import {
  defineEvent,
  EventRegistry,
  EventSchemaError,
  EventStore,
  eventTypesOf,
  type StoredCommit,
} from './index.js';

const Incremented = defineEvent('Incremented', z.object({ by: z.number().int().positive() }));
const Private = defineEvent('PrivateThing', z.object({ secret: z.string() }));

describe('event store: type filters, decoding, consumer hygiene (real JetStream)', () => {
  let env: TestEnvironment;
  let store: EventStore; // knows Incremented only
  let other: EventStore; // another service: also knows its PrivateThing
  before(async () => {
    env = await createTestEnvironment();
    store = env.newStore(new EventRegistry().register(Incremented));
    other = env.newStore(new EventRegistry().register(Incremented, Private));
    await store.ensureStream();
    const meta = (id: string) => ({ commandId: id, actor: 't' });
    await store.append(
      { workspaceId: 'w', type: 'counter', id: 'a' },
      0,
      [{ type: 'Incremented', data: { by: 1 } }],
      meta('1'),
    );
    await other.append(
      { workspaceId: 'w', type: 'vault', id: 'v' },
      0,
      [{ type: 'PrivateThing', data: { secret: 's' } }],
      meta('2'),
    );
    await other.append(
      { workspaceId: 'w', type: 'vault', id: 'v2' },
      0,
      [
        { type: 'PrivateThing', data: { secret: 't' } },
        { type: 'Incremented', data: { by: 2 } },
      ],
      meta('3'),
    );
  });
  after(() => env.close());

  const all = async (opts: Parameters<EventStore['replay']>[0]) => {
    const out: StoredCommit[] = [];
    for await (const c of store.replay(opts)) out.push(c);
    return out;
  };

  it('replays only the commits and events of the asked types, without decoding the others', async () => {
    await assert.rejects(
      all({ fromSeq: 1 }),
      (err: unknown) => err instanceof EventSchemaError && /PrivateThing/.test(err.message),
    );
    const commits = await all({ fromSeq: 1, types: ['Incremented'] });
    assert.deepEqual(
      commits.map((c) => [c.seq, c.events.map((e) => [e.type, e.index, e.data])]),
      [
        [1, [['Incremented', 0, { by: 1 }]]],
        [3, [['Incremented', 1, { by: 2 }]]],
      ],
    );
    assert.deepEqual(await all({ fromSeq: 1, types: ['Nothing'] }), []);
    // raw replays still show everything, as stored.
    const raw: StoredCommit[] = [];
    for await (const c of store.replay({ fromSeq: 1, raw: true })) raw.push(c);
    assert.deepEqual(
      raw.map((c) => c.events.map((e) => e.type)),
      [['Incremented'], ['PrivateThing'], ['PrivateThing', 'Incremented']],
    );
  });

  it('decodes only the asked types of a commit and reads the types from the header', async () => {
    const consumer = await store.js.consumers.get(store.stream, { opt_start_seq: 3 });
    const m = await consumer.next();
    await consumer.delete();
    assert.ok(m);
    assert.deepEqual(eventTypesOf(m), ['PrivateThing', 'Incremented']);
    const c = store.decode(m, { types: new Set(['Incremented']) });
    assert.deepEqual(
      c.events.map((e) => [e.type, e.index, e.seq, e.aggregate.id, e.version]),
      [['Incremented', 1, 3, 'v2', 1]],
    );
    assert.equal(c.meta.commandId, '3');
    assert.throws(() => store.decode(m), /PrivateThing.*unknown event type/);
    assert.throws(
      () => store.decode({ seq: 9, subject: 'x', data: new TextEncoder().encode('{"v":1,"events":[]}') }),
      (err: unknown) => err instanceof EventSchemaError && /message 9/.test(err.message),
    );
    assert.throws(
      () => store.decode({ seq: 10, subject: 'x', data: new TextEncoder().encode('nope') }),
      /message 10 is not JSON/,
    );
  });

  it('skips a big commit of other types by its header, without parsing its body', async () => {
    const h = headers();
    h.set('Runway-Event-Types', 'PrivateThing');
    const consumer = await store.js.consumers.get(store.stream, { opt_start_seq: 1 });
    const real = await consumer.next();
    await consumer.delete();
    assert.ok(real);
    const fake = (body: string) => ({
      seq: 99,
      subject: 'x',
      data: new TextEncoder().encode(body),
      headers: h,
    });
    const only = new Set(['Incremented']);
    // 2 KB that are not even JSON: never parsed.
    assert.equal(store.decodeMatching(fake(`{${'x'.repeat(2048)}`), only), undefined);
    // A small body is cheaper to parse than the header: parsed (and here found broken).
    assert.throws(() => store.decodeMatching(fake('{x'), only), /not JSON/);
    assert.deepEqual(
      store.decodeMatching(real, only)?.events.map((e) => e.data),
      [{ by: 1 }],
    );
    assert.equal(store.decodeMatching(real, new Set(['PrivateThing'])), undefined);
  });

  it('still explains a bad aggregate reference', () => {
    assert.throws(
      () => store.subjectOf({ workspaceId: 'w', type: 'Bad Type', id: 'x' }),
      /aggregate type must be lower case/,
    );
    assert.throws(() => store.subjectOf({ workspaceId: 'w.x', type: 'counter', id: 'x' }), /workspace id/);
  });

  it('leaves no consumer behind after reads and replays', async () => {
    for (let i = 0; i < 5; i++) {
      await store.read({ workspaceId: 'w', type: 'counter', id: 'a' });
      await all({ fromSeq: 1, types: ['Incremented'] });
      await all({ fromSeq: 99 });
    }
    const jsm = await store.jsm();
    const end = Date.now() + 5_000;
    let left = -1;
    while (Date.now() < end) {
      left = (await jsm.streams.info(store.stream)).state.consumer_count;
      if (left === 0) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.equal(left, 0, 'ordered consumers left on the server');
  });
});
