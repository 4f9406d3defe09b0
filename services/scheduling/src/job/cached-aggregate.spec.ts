import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { AggregateTypes, integrationRegistry, type JobEvent } from '#libs/contracts';
import type { EventStore } from '#libs/eventstore';
import { createTestEnvironment, type TestEnvironment } from '#libs/testing';
import { CachedAggregates } from './cached-aggregate.js';
import { jobDecider, type JobCommand, type JobState } from './job.decider.js';
import { jobIdFor } from './job-id.js';
import { testUser } from './job-test-fixtures.js';

const ws = '5a1f5c1e-1f7e-4a4b-9a55-3c2f1d0e9a22';
const user = testUser;
const dep = { id: '44444444-4444-4444-8444-444444444444', version: 1 };

describe('cached job aggregates (real JetStream)', () => {
  let env: TestEnvironment;
  let store: EventStore;

  before(async () => {
    env = await createTestEnvironment();
    store = env.newStore(integrationRegistry());
    await store.ensureStream();
  });
  after(() => env.close());

  const request = (runId: string): JobCommand => ({
    type: 'RequestRun',
    runId,
    trigger: 'manual',
    profile: null,
    deployment: dep,
    configuration: null,
    requestedBy: user,
  });

  it('remembers the latest command results only, and still answers an older retry with its original run', async () => {
    const jobId = jobIdFor(ws, 'bounded.py');
    const ref = { workspaceId: ws, type: AggregateTypes.job, id: jobId };
    // At most 3 command results per aggregate in memory.
    const cache = new CachedAggregates<JobState, JobCommand, JobEvent>(store, jobDecider, 10, 3);
    await cache.handle(
      ref,
      {
        type: 'UpsertJob',
        jobId,
        versionId: randomUUID(),
        name: 'bounded.py',
        description: '',
        entryPoint: 'bounded.py',
        kind: 'batch',
        active: true,
        profile: null,
        schedule: null,
        actor: user,
      },
      { commandId: 'create', actor: user },
    );
    const runIds: string[] = [];
    for (let i = 1; i <= 6; i++) {
      const r = await cache.handle(ref, request(randomUUID()), { commandId: `req-${i}`, actor: user });
      runIds.push((r.events[0]!.data as { runId: string }).runId);
    }
    // req-6 is remembered: answered from memory.
    const recent = await cache.handle(ref, request(randomUUID()), { commandId: 'req-6', actor: user });
    assert.equal(recent.duplicate, true);
    assert.equal((recent.events[0]!.data as { runId: string }).runId, runIds[5]);
    // req-1 is not (3 remembered), but the stream's duplicate window knows it: the original run.
    const old = await cache.handle(ref, request(randomUUID()), { commandId: 'req-1', actor: user });
    assert.equal(old.duplicate, true);
    assert.equal((old.events[0]!.data as { runId: string }).runId, runIds[0]);
    assert.equal(old.seq < recent.seq, true, 'the original position');
    const { events } = await store.read(ref);
    assert.equal(events.filter((e) => e.type === 'RunRequested').length, 6, 'no run requested twice');
    // The next command still decides on an up-to-date state (numbers continue).
    const next = await cache.handle(ref, request(randomUUID()), { commandId: 'req-7', actor: user });
    assert.equal((next.events[0]!.data as { number: number }).number, 7);
  });
});
