import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { AckPolicy, DeliverPolicy } from '@nats-io/jetstream';
import { RunRequested } from '#libs/contracts';
import { reactorDurableName, startReactor, type EventStore } from '#libs/eventstore';
import { createTestEnvironment, type TestEnvironment } from '#libs/testing';
import { executionRegistry } from '../run.events.js';
import { adoptLegacyRunConsumer, LEGACY_RUN_CONSUMER } from './legacy-consumer.js';

const ws = '6b1f5c1e-1f7e-4a4b-9a55-3c2f1d0e9a11';
const jobId = '44444444-4444-4444-8444-444444444444';
const user = '0d5c2a7e-2b4f-4c3a-8e1d-5f6a7b8c9d01';

describe('the reactors continue where the old run_workers consumer stood (real JetStream)', () => {
  let env: TestEnvironment;
  let store: EventStore;
  const runIds: string[] = [];

  before(async () => {
    env = await createTestEnvironment();
    store = env.newStore(executionRegistry());
    await store.ensureStream();
    let seq = 0;
    for (let i = 1; i <= 3; i++) {
      const runId = randomUUID();
      runIds.push(runId);
      const data = {
        runId,
        number: i,
        trigger: 'manual',
        profile: 'prod',
        jobVersion: 1,
        jobVersionId: '11111111-1111-4111-8111-111111111111',
        entryPoint: 'a.py',
        kind: 'batch',
        timeoutSeconds: null,
        deployment: null,
        configuration: null,
        requestedBy: user,
      };
      const ref = { workspaceId: ws, type: 'job', id: jobId };
      seq = (
        await store.append(ref, seq, [{ type: 'RunRequested', data }], {
          commandId: randomUUID(),
          actor: user,
        })
      ).seq;
    }
  });
  after(async () => {
    await env.close();
  });

  it('starts the new durables after the old one’s ack floor, then removes the old one', async () => {
    const jsm = await store.jsm();
    // The workers of the previous version: two requests claimed (acked), the third not yet.
    await jsm.consumers.add(store.stream, {
      durable_name: LEGACY_RUN_CONSUMER,
      ack_policy: AckPolicy.Explicit,
      deliver_policy: DeliverPolicy.All,
      filter_subject: store.filterSubject({ aggregateType: 'job' }),
    });
    const legacy = await store.js.consumers.get(store.stream, LEGACY_RUN_CONSUMER);
    const batch = await legacy.fetch({ max_messages: 2, expires: 2_000 });
    for await (const m of batch) await m.ackAck();
    const floor = (await jsm.consumers.info(store.stream, LEGACY_RUN_CONSUMER)).ack_floor.stream_seq;
    assert.ok(floor > 0);

    const logs: string[] = [];
    await adoptLegacyRunConsumer(store, 'run-workers', 'skipped-runs', (m) => logs.push(m));
    const claims = await jsm.consumers.info(store.stream, reactorDurableName(store, 'run-workers'));
    assert.equal(claims.config.opt_start_seq, floor + 1);
    assert.match(logs.join('\n'), /continues after stream sequence/);
    // The other reactor has not adopted it yet: the old consumer stays.
    assert.ok(await jsm.consumers.info(store.stream, LEGACY_RUN_CONSUMER));
    await adoptLegacyRunConsumer(store, 'skipped-runs', 'run-workers', () => undefined);
    await assert.rejects(jsm.consumers.info(store.stream, LEGACY_RUN_CONSUMER), /consumer not found/);

    // The claims reactor sees only the request the old workers had not taken.
    const seen: string[] = [];
    const reactor = await startReactor({
      name: 'run-workers',
      store,
      eventTypes: ['RunRequested'],
      aggregateTypes: ['job'],
      react: async (e) => {
        seen.push(RunRequested.schema.parse(e.data).runId);
      },
    });
    const until = Date.now() + 10_000;
    while (seen.length < 1 && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
    await new Promise((r) => setTimeout(r, 300));
    await reactor.stop();
    assert.deepEqual(seen, [runIds[2]]);
    // Adopting again (a restart) changes nothing.
    await adoptLegacyRunConsumer(store, 'run-workers', 'skipped-runs', () => undefined);
  });
});
