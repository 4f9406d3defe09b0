import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { schedulingRegistry } from './job.events.js';
import type { EventStore } from '#libs/eventstore';
import { connectNats, drainNats, type NatsConnection } from '#libs/nats';
import { createTestEnvironment, type TestEnvironment } from '#libs/testing';
import { JobCommands } from './job.handler.js';
import { jobIdFor } from './job-id.js';
import { createScheduledJob, deployedVersions, testUser } from './job-test-fixtures.js';

const ws = '6b1f5c1e-1f7e-4a4b-9a55-3c2f1d0e9a11';
const user = testUser;
const versions = deployedVersions;

describe('run numbers under concurrency (real JetStream)', () => {
  let env: TestEnvironment;
  let other: NatsConnection;
  let a: JobCommands;
  let b: JobCommands;
  let storeA: EventStore;

  before(async () => {
    env = await createTestEnvironment();
    storeA = env.newStore(schedulingRegistry());
    await storeA.ensureStream();
    // Two "scheduling processes": separate connections, separate in-process locks.
    other = await connectNats({ url: env.natsUrl, name: 'second-scheduler' });
    a = new JobCommands(storeA, versions);
    b = new JobCommands(env.newStore(schedulingRegistry(), other), versions);
  });
  after(async () => {
    await drainNats(other);
    await env.close();
  });

  it('numbers 20 concurrent run requests 1..20, with no gap and no duplicate, across two processes', async () => {
    await a.upsert({
      workspaceId: ws,
      actor: user,
      commandId: 'create',
      name: 'load.py',
      description: '',
      entryPoint: 'load.py',
      kind: 'batch',
    });
    const jobId = jobIdFor(ws, 'load.py');
    const t0 = Date.now();
    const replies = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        (i % 2 ? a : b).requestRun({
          workspaceId: ws,
          actor: user,
          commandId: `req-${i}`,
          jobId,
          trigger: 'manual',
          profile: null,
        }),
      ),
    );
    const ms = Date.now() - t0;
    assert.deepEqual(
      replies.map((r) => r.number).sort((x, y) => x - y),
      Array.from({ length: 20 }, (_, i) => i + 1),
    );
    assert.equal(new Set(replies.map((r) => r.runId)).size, 20);
    const { events } = await storeA.read({ workspaceId: ws, type: 'job', id: jobId });
    assert.deepEqual(
      events.filter((e) => e.type === 'RunRequested').map((e) => (e.data as { number: number }).number),
      Array.from({ length: 20 }, (_, i) => i + 1),
      'stored in number order',
    );
    // A retried request (same command id) gets its original run back.
    const again = await a.requestRun({
      workspaceId: ws,
      actor: user,
      commandId: 'req-3',
      jobId,
      trigger: 'manual',
      profile: null,
    });
    assert.equal(again.runId, replies[3]!.runId);
    console.log(`20 concurrent run requests in ${ms} ms`);
  });

  it('meets concurrent creates of one name on one aggregate', async () => {
    const results = await Promise.all(
      Array.from({ length: 6 }, (_, i) =>
        (i % 2 ? a : b).upsert({
          workspaceId: ws,
          actor: user,
          commandId: `up-${i}`,
          name: 'same/name.py',
          description: 'd',
          entryPoint: 'same/name.py',
          kind: 'batch',
        }),
      ),
    );
    assert.equal(results.filter((r) => r.created).length, 1);
    assert.ok(results.every((r) => r.version === 1 && r.jobId === jobIdFor(ws, 'same/name.py')));
  });

  it('two schedulers firing the same time make one run; the second gets that run back (catching up, not re-reading)', async () => {
    await createScheduledJob(a, ws, 'fired.py');
    const jobId = jobIdFor(ws, 'fired.py');
    const times = [1, 2, 3].map((i) => new Date(Math.ceil(Date.now() / 5000) * 5000 + i * 5000));
    for (const at of times) {
      // Both load the job first, then race for the same fire time.
      const [x, y] = await Promise.all([a.fireOutcome(ws, jobId, at), b.fireOutcome(ws, jobId, at)]);
      assert.equal(x.outcome, 'requested');
      assert.equal(y.outcome, 'requested');
      assert.equal(x.runId, y.runId, 'one run, reported to both');
    }
    const { events } = await storeA.read({ workspaceId: ws, type: 'job', id: jobId });
    const requested = events.filter((e) => e.type === 'RunRequested');
    assert.deepEqual(
      requested.map((e) => (e.data as { fireAt: string }).fireAt),
      times.map((t) => t.toISOString()),
    );
    assert.deepEqual(
      requested.map((e) => (e.data as { number: number }).number),
      [1, 2, 3],
    );
  });

  it('a skipped fire is one recorded decision: two schedulers and a retry record one ScheduledRunSkipped', async () => {
    await a.upsert({
      workspaceId: ws,
      actor: user,
      commandId: 'create-skipping',
      name: 'skipping.py',
      description: '',
      entryPoint: 'skipping.py',
      kind: 'batch',
      schedule: '*/5 * * * * *',
      overlapPolicy: 'skip',
    });
    const jobId = jobIdFor(ws, 'skipping.py');
    // A manual run is active: the next fire is skipped (overlap policy skip).
    await a.requestRun({
      workspaceId: ws,
      actor: user,
      commandId: 'manual',
      jobId,
      trigger: 'manual',
      profile: null,
    });
    const at = new Date(Math.ceil(Date.now() / 5000) * 5000 + 5000);
    const [x, y] = await Promise.all([a.fireOutcome(ws, jobId, at), b.fireOutcome(ws, jobId, at)]);
    const again = await b.fireOutcome(ws, jobId, at);
    for (const o of [x, y, again]) {
      assert.equal(o.outcome, 'skipped');
      assert.equal(o.runId, x.runId, 'one skipped run, reported to all');
      assert.match(o.reason ?? '', /still active \(overlap policy skip\)/);
    }
    const { events } = await storeA.read({ workspaceId: ws, type: 'job', id: jobId });
    assert.deepEqual(
      events.map((e) => e.type),
      ['JobCreated', 'RunRequested', 'ScheduledRunSkipped'],
    );
  });

  it('prewarm loads the cold scheduled jobs (in bulk or one by one); the next fire decides on them', async () => {
    const names = ['warm-1.py', 'warm-2.py', 'warm-3.py'];
    for (const name of names) await createScheduledJob(a, ws, name);
    // More than 1 cold job: one replay of the job streams; 1: read on its own.
    const fresh = new JobCommands(env.newStore(schedulingRegistry()), versions, { prewarmOneByOne: 1 });
    const jobs = names.map((n) => ({ workspaceId: ws, jobId: jobIdFor(ws, n) }));
    assert.equal(await fresh.prewarm(jobs.slice(0, 2)), 2, 'only the jobs asked for');
    assert.equal(await fresh.prewarm(jobs), 1, 'jobs already in memory are left alone');
    assert.equal(await fresh.prewarm(jobs), 0);
    const at = new Date(Math.ceil(Date.now() / 5000) * 5000 + 5000);
    for (const j of jobs) assert.equal((await fresh.fireOutcome(ws, j.jobId, at)).outcome, 'requested');
    // Another process fired the next time meanwhile: the prewarmed copy is behind and catches up.
    const next = new Date(at.getTime() + 5000);
    const other = await a.fireOutcome(ws, jobs[0]!.jobId, next);
    const mine = await fresh.fireOutcome(ws, jobs[0]!.jobId, next);
    assert.equal(mine.runId, other.runId);
  });

  it('prewarm passes over garbage on a job subject: the other jobs are loaded', async () => {
    const names = ['garbage-1.py', 'garbage-2.py'];
    for (const name of names) await createScheduledJob(a, ws, name);
    const jobs = names.map((n) => ({ workspaceId: ws, jobId: jobIdFor(ws, n) }));
    await storeA.js.publish(
      storeA.subjectOf({ workspaceId: ws, type: 'job', id: jobs[0]!.jobId }),
      new Uint8Array([0xde, 0xad, 0xbe, 0xef, 0, 1, 2, 3]),
    );
    const fresh = new JobCommands(env.newStore(schedulingRegistry()), versions, { prewarmOneByOne: 0 });
    assert.equal(await fresh.prewarm(jobs), 2);
    const at = new Date(Math.ceil(Date.now() / 5000) * 5000 + 5000);
    assert.equal((await fresh.fireOutcome(ws, jobs[1]!.jobId, at)).outcome, 'requested');
  });
});
