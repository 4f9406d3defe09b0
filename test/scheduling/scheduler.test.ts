import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Kysely } from 'kysely';
import { schedulingRegistry } from '../../services/scheduling/src/job/job.events.js';
import { JobCommands, jobRef } from '../../services/scheduling/src/job/job.handler.js';
import { LatestVersions } from '../../services/scheduling/src/job/workspace-versions.js';
import type { SchedulingTables } from '../../services/scheduling/src/migrations/index.js';
import { nextFire } from '../../services/scheduling/src/scheduler/cron.js';
import { Scheduler } from '../../services/scheduling/src/scheduler/scheduler.js';
import { startTestStack, type TestStack } from '../support/stack.js';
import { uploadPackage, type Json } from '../jobs/support.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('scheduler: cron jobs fire once per fire time, with any number of schedulers', () => {
  let s: TestStack;
  let ws: string;
  let db: Kysely<SchedulingTables>;
  let second: Scheduler;
  const secondFires: (string | null)[] = [];
  const base = () => `/api/v1/workspaces/${ws}`;
  const upsert = (body: Json) =>
    s.call('POST', `${base()}/scripts`, {
      description: '',
      entry_point: 'tick.py',
      script_type: 'batch',
      profile: null,
      ...body,
    });

  before(async () => {
    s = await startTestStack();
    ws = s.workspaceId;
    await uploadPackage(s, 'deployments', [{ path: 'tick.py', content: 'print("tick")\n' }]);
    // A second scheduler replica with its own store connection and job cache (as another process would have).
    db = s.env.newDb<SchedulingTables>();
    const store = s.env.newStore(schedulingRegistry());
    const commands = new JobCommands(store, new LatestVersions(db));
    const target = {
      fire: async (w: string, j: string, at: Date) => {
        const r = await commands.fire(w, j, at);
        secondFires.push(r ? r.runId : null);
        return r;
      },
    };
    second = new Scheduler(db, target, {
      intervalMs: 100,
      log: () => {},
    });
  });
  after(async () => {
    await second.stop();
    await db.destroy();
    await s.stop();
  });

  it('rejects an invalid cron expression or time zone with a precise 400', async () => {
    const a = await upsert({ name: 'bad.py', schedule: '61 * * * *' });
    assert.equal(a.status, 400, a.text);
    assert.match(a.text, /invalid schedule \\?"61 \* \* \* \*\\?": minute 61 out of range 0-59/);
    const b = await upsert({ name: 'bad.py', schedule: '0 * * * *', timezone: 'Mars/Olympus' });
    assert.equal(b.status, 400, b.text);
    assert.match(b.text, /invalid time zone/);
    const c = await upsert({ name: 'bad.py', schedule: '* * *' });
    assert.equal(c.status, 400, c.text);
  });

  it('keeps timezone and next_scheduled_run in the job read model', async () => {
    const r = await upsert({
      name: 'berlin.py',
      schedule: '30 2 * * *',
      timezone: 'Europe/Berlin',
      active: false,
    });
    assert.equal(r.status, 201, r.text);
    const j = r.json as Json;
    assert.equal(j.timezone, 'Europe/Berlin');
    assert.equal(j.next_scheduled_run, null, 'inactive: no next run');
    const on = await upsert({
      name: 'berlin.py',
      schedule: '30 2 * * *',
      timezone: 'Europe/Berlin',
      active: true,
    });
    const next = (on.json as Json).next_scheduled_run as string;
    assert.ok(next, on.text);
    const expected = nextFire('30 2 * * *', 'Europe/Berlin', new Date(Date.now() - 60_000))!;
    assert.equal(next, expected.toISOString());
    // Cleared schedule: no next run, but the job stays.
    const off = await upsert({ name: 'berlin.py', schedule: null });
    assert.equal((off.json as Json).next_scheduled_run, null);
    assert.equal((off.json as Json).schedule, null);
  });

  it('fires */2 * * * * * every 2 s with trigger schedule and consecutive numbers, once with two schedulers; active=false stops it', async () => {
    second.start();
    // allow: each run of tick.py stays active ≥ 2.5 s (starting is kept visible), longer than the period.
    const r = await upsert({
      name: 'tick.py',
      schedule: '*/2 * * * * *',
      active: true,
      overlap_policy: 'allow',
    });
    assert.equal(r.status, 201, r.text);
    const job = r.json as Json;
    assert.ok(job.next_scheduled_run);
    await sleep(9_000);
    const stop = await upsert({ name: 'tick.py', schedule: '*/2 * * * * *', active: false });
    assert.equal(stop.status, 201, stop.text);
    assert.equal((stop.json as Json).next_scheduled_run, null);
    await sleep(4_000);

    const { events } = await s.env.newStore(schedulingRegistry()).read(jobRef(ws, job.id as string));
    const deactivated = events.findIndex(
      (e) => e.type === 'JobUpdated' && (e.data as { spec: { active: boolean } }).spec.active === false,
    );
    assert.ok(deactivated > 0);
    const runs = events
      .filter((e) => e.type === 'RunRequested')
      .map((e) => ({
        ...(e.data as { number: number; trigger: string; fireAt?: string | null }),
        time: e.time,
      }));
    assert.ok(runs.length >= 3, `only ${runs.length} scheduled runs in 9 s`);
    assert.ok(
      events.slice(deactivated).every((e) => e.type !== 'RunRequested'),
      'no run after active=false',
    );
    runs.forEach((run, i) => {
      assert.equal(run.trigger, 'schedule');
      assert.equal(run.number, i + 1, 'consecutive numbers');
      assert.ok(run.fireAt);
      const delay = new Date(run.time).getTime() - new Date(run.fireAt).getTime();
      assert.ok(delay >= 0 && delay < 1000, `run ${run.number} requested ${delay} ms after its fire time`);
      if (i > 0)
        assert.equal(new Date(run.fireAt).getTime() - new Date(runs[i - 1]!.fireAt!).getTime(), 2000);
    });
    assert.equal(new Set(runs.map((x) => x.fireAt)).size, runs.length, 'no doubled fire time');
    // The second replica did try to fire (it competed with the service's own scheduler).
    assert.ok(secondFires.length >= runs.length - 1, `second scheduler fired ${secondFires.length} times`);

    // The compatible API shows them as scheduled runs.
    const list = await s.call('GET', `${base()}/runs?script_id=${job.id as string}&limit=100`);
    assert.equal(list.status, 200, list.text);
    const items = (list.json as { items: Json[] }).items;
    assert.ok(items.length >= runs.length - 1);
    assert.ok(
      items.every((x) => x.trigger === 'schedule'),
      list.text.slice(0, 500),
    );
  });
});
