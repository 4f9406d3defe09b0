import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createTestEnvironment, type TestEnvironment } from '#libs/testing';
import { SchedulerMembers, shareOf } from './shares.js';

describe('scheduler shares (real JetStream KV)', () => {
  let env: TestEnvironment;
  before(async () => {
    env = await createTestEnvironment();
  });
  after(() => env.close());

  it('spreads jobs evenly and the same way everywhere', () => {
    const counts = [0, 0, 0];
    for (let i = 0; i < 3000; i++) counts[shareOf(`job-${i}`, 3)]!++;
    for (const c of counts) assert.ok(c > 850 && c < 1150, String(counts));
    assert.equal(shareOf('abc', 5), shareOf('abc', 5));
  });

  it('each job has exactly one owner among the live members; a member that leaves hands its share over', async () => {
    const opts = { refreshMs: 50, ttlMs: 5_000 };
    const a = await SchedulerMembers.open(env.nats, env.subjectPrefix, opts);
    const b = await SchedulerMembers.open(env.nats, env.subjectPrefix, opts);
    // Before joining, a process owns everything (as a lone scheduler does).
    assert.equal(a.mine('job-1'), true);
    a.start();
    b.start();
    const until = Date.now() + 10_000;
    while ((a.list.length < 2 || b.list.length < 2) && Date.now() < until)
      await new Promise((r) => setTimeout(r, 20));
    assert.deepEqual(a.list, b.list);
    const jobs = Array.from({ length: 200 }, (_, i) => `job-${i}`);
    for (const j of jobs) assert.equal(Number(a.mine(j)) + Number(b.mine(j)), 1, j);
    assert.ok(jobs.some((j) => a.mine(j)) && jobs.some((j) => b.mine(j)));
    await b.stop();
    while (a.list.length > 1 && Date.now() < until + 5_000) await new Promise((r) => setTimeout(r, 20));
    for (const j of jobs) assert.equal(a.mine(j), true);
    await a.stop();
  });
});
