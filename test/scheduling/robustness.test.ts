import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Kysely } from 'kysely';
import { DomainError, type StoredEvent } from '#libs/eventstore';
import { schedulingRegistry } from '../../services/scheduling/src/job/job.events.js';
import { JobCommands, jobRef } from '../../services/scheduling/src/job/job.handler.js';
import { LatestVersions } from '../../services/scheduling/src/job/workspace-versions.js';
import type { SchedulingTables } from '../../services/scheduling/src/migrations/index.js';
import { nextFire } from '../../services/scheduling/src/scheduler/cron.js';
import { Scheduler, type FireTarget } from '../../services/scheduling/src/scheduler/scheduler.js';
import { startTestStack, type TestStack } from '../support/stack.js';
import { newUser, uploadPackage, type Json } from '../jobs/support.js';

// No scheduler inside the stack: each test drives its own (a separate process, or one with a fake clock).
process.env.RUNWAY_SCHEDULER = 'off';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const MIN = 60_000;

type Fire = { number: number; fireAt: string; time: string; type: string };

describe('scheduler robustness: restarts, downtime, retries, changes just before a fire, redeploys', () => {
  let s: TestStack;
  let ws: string;
  let db: Kysely<SchedulingTables>;
  let commands: JobCommands;
  const children: ChildProcess[] = [];
  const base = () => `/api/v1/workspaces/${ws}`;
  const upsert = async (body: Json, token?: string, workspace = ws) => {
    const r = await s.call(
      'POST',
      `/api/v1/workspaces/${workspace}/scripts`,
      { description: '', entry_point: 'tick.py', script_type: 'batch', profile: null, ...body },
      token,
    );
    assert.equal(r.status, 201, r.text);
    return r.json as Json;
  };
  const store = () => s.env.newStore(schedulingRegistry());
  /** Scheduled fires of a job, from its events: requested and skipped runs. */
  const firesOf = async (jobId: string, workspace = ws): Promise<Fire[]> =>
    (await store().read(jobRef(workspace, jobId))).events
      .filter((e: StoredEvent) => e.type === 'RunRequested' || e.type === 'ScheduledRunSkipped')
      .map((e) => ({ ...(e.data as { number: number; fireAt: string }), time: e.time, type: e.type }))
      .filter((f) => f.fireAt);
  /** A FireTarget limited to some jobs (other tests' jobs are not fired by a scheduler with a fake clock). */
  const only = (ids: string[], target: FireTarget = commands): FireTarget => ({
    fire: (w, j, at) => (ids.includes(j) ? target.fire(w, j, at) : Promise.resolve(null)),
  });
  const fakeScheduler = (target: FireTarget, clock: { now: number }, opts = {}) =>
    new Scheduler(db, target, { now: () => new Date(clock.now), log: () => {}, ...opts });

  before(async () => {
    s = await startTestStack({ RUNWAY_EMBEDDED_WORKERS: '0' });
    ws = s.workspaceId;
    await uploadPackage(s, 'deployments', [{ path: 'tick.py', content: 'print("tick")\n' }]);
    db = s.env.newDb<SchedulingTables>();
    commands = new JobCommands(store(), new LatestVersions(db));
  });
  after(async () => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    await db.destroy();
    await s.stop();
  });

  /** The scheduling service as its own process (its scheduler on), on the stack's NATS and database. */
  function startSchedulingProcess(env: Record<string, string> = {}): ChildProcess {
    const child = spawn(process.execPath, [join(process.cwd(), 'dist/services/scheduling/src/main.js')], {
      env: {
        ...process.env,
        ...s.env.childEnv(),
        RUNWAY_DATA_DIR: s.dataDir,
        RUNWAY_SCHEDULER: 'on',
        RUNWAY_LOG_LEVEL: 'error',
        ...env,
      },
      stdio: ['ignore', 'inherit', 'inherit'],
    });
    children.push(child);
    return child;
  }
  const waitFor = async (what: string, ok: () => Promise<boolean>, ms = 30_000) => {
    const until = Date.now() + ms;
    while (!(await ok())) {
      if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
      await sleep(200);
    }
  };

  it('a scheduling process told to stop (SIGTERM) first fires what is due within its grace; with no grace it leaves it', async () => {
    const job = await upsert({
      name: 'grace',
      schedule: '*/3 * * * * *',
      missed_policy: 'skip',
      overlap_policy: 'allow',
    });
    const id = job.id as string;
    /**
     * SIGTERM `lead` ms before a fire time (after a first fire): returns that fire time and when the
     * process exited. The graced stop uses 600 ms (it must wait for the fire); the one without grace
     * 2,000 ms, so that "exits at once" is told apart from "waited" even on a loaded machine.
     */
    const stopBeforeFire = async (env: Record<string, string>, lead: number) => {
      const before = (await firesOf(id)).length;
      const p = startSchedulingProcess(env);
      await waitFor('a first fire', async () => (await firesOf(id)).length > before);
      const due = nextFire('*/3 * * * * *', 'UTC', new Date(Date.now() + lead + 100))!.getTime();
      await sleep(due - lead - Date.now());
      const exited = new Promise((r) => p.once('exit', r));
      p.kill('SIGTERM');
      await exited;
      return { due, exitedAt: Date.now() };
    };

    const graced = await stopBeforeFire({}, 600);
    const fired = (await firesOf(id)).find((f) => Date.parse(f.fireAt) === graced.due);
    assert.ok(fired, 'the fire due 600 ms after SIGTERM was fired before the process exited');
    assert.ok(
      Date.parse(fired.time) - graced.due < 1000,
      `on time (${Date.parse(fired.time) - graced.due} ms late)`,
    );
    assert.ok(graced.exitedAt >= graced.due, 'the process waited for it');

    const immediate = await stopBeforeFire({ RUNWAY_SCHEDULER_STOP_GRACE_MS: '0' }, 2000);
    assert.ok(immediate.exitedAt < immediate.due, 'without grace the process exits at once');
    assert.equal(
      (await firesOf(id)).filter((f) => Date.parse(f.fireAt) === immediate.due).length,
      0,
      'and leaves the fire to its replacement',
    );
    await upsert({ name: 'grace', active: false });
  });

  it('a scheduling process SIGKILLed and restarted within a minute: run_all misses and doubles nothing, run_once fires the latest missed time once', async () => {
    const all = await upsert({
      name: 'kill-all',
      schedule: '*/2 * * * * *',
      missed_policy: 'run_all',
      overlap_policy: 'allow',
    });
    const once = await upsert({
      name: 'kill-once',
      schedule: '*/2 * * * * *',
      missed_policy: 'run_once',
      overlap_policy: 'allow',
    });
    const createdAt = Date.parse(all.date_updated as string);
    const a = startSchedulingProcess();
    await waitFor(
      '3 fires of the first process',
      async () => (await firesOf(all.id as string)).length >= 3,
      60_000,
    );
    a.kill('SIGKILL');
    await new Promise((r) => a.once('exit', r));
    const killedAt = Date.now();
    await sleep(7_000); // down: 3 fire times pass
    const restartedAt = Date.now();
    const b = startSchedulingProcess();
    await waitFor('a fire of the restarted process', async () =>
      (await firesOf(all.id as string)).some((f) => Date.parse(f.fireAt) > restartedAt + 2000),
    );
    await sleep(3_000);
    await upsert({ name: 'kill-all', active: false });
    await upsert({ name: 'kill-once', active: false });
    await sleep(1_000);
    b.kill('SIGTERM');
    await new Promise((r) => b.once('exit', r));

    const fa = await firesOf(all.id as string);
    const times = fa.map((f) => Date.parse(f.fireAt));
    assert.equal(new Set(times).size, times.length, 'no doubled fire time');
    assert.equal(times[0], nextFire('*/2 * * * * *', 'UTC', new Date(createdAt))!.getTime(), 'first fire');
    times.forEach((t, i) => {
      if (i > 0)
        assert.equal(t - times[i - 1]!, 2000, `no missed fire time before ${new Date(t).toISOString()}`);
    });
    assert.ok(
      times.some((t) => t > killedAt && t < restartedAt),
      'the downtime was caught up',
    );
    assert.ok(times[times.length - 1]! > restartedAt + 2000);
    fa.forEach((f, i) => assert.equal(f.number, i + 1, 'numbers without gaps'));

    const fo = (await firesOf(once.id as string)).map((f) => Date.parse(f.fireAt));
    assert.equal(new Set(fo).size, fo.length, 'no doubled fire time (run_once)');
    // The fire times missed while it was down made no run each (the latest one made one run).
    assert.deepEqual(
      fo.filter((t) => t >= killedAt + 2000 && t < restartedAt - 2000),
      [],
      'no run per missed fire time',
    );
    const gaps = fo.slice(1).map((t, i) => t - fo[i]!);
    assert.ok(
      gaps.some((g) => g >= 4000),
      `several fire times collapsed into one run: ${JSON.stringify(gaps)}`,
    );
    assert.ok(fo[fo.length - 1]! > restartedAt, 'it fires again after the restart');
  });

  it('scheduler down 15 minutes: run_once fires once, skip fires nothing, run_all fires the latest 10, oldest first; a restart adds nothing', async () => {
    const jobs: Record<string, Json> = {};
    for (const policy of ['run_once', 'skip', 'run_all'])
      jobs[policy] = await upsert({
        name: `down-${policy}`,
        schedule: '* * * * *',
        missed_policy: policy,
        overlap_policy: 'allow',
      });
    const ids = Object.values(jobs).map((j) => j.id as string);
    const created = Date.parse(jobs.run_all!.date_updated as string);
    // "Now" is 15 minutes later, 20 s past a full minute (so skip's 5 s grace does not apply).
    const clock = { now: Math.floor((created + 15 * MIN) / MIN) * MIN + 20_000 };
    const latest = clock.now - 20_000;
    const sched = fakeScheduler(only(ids), clock);
    await sched.tick();
    const once = await firesOf(jobs.run_once!.id as string);
    assert.deepEqual(
      once.map((f) => f.fireAt),
      [new Date(latest).toISOString()],
    );
    assert.deepEqual(await firesOf(jobs.skip!.id as string), []);
    const all = await firesOf(jobs.run_all!.id as string);
    assert.deepEqual(
      all.map((f) => f.fireAt),
      Array.from({ length: 10 }, (_, i) => new Date(latest - (9 - i) * MIN).toISOString()),
      'capped at the latest 10, oldest first',
    );
    // The same tick again, and a fresh scheduler (a restart) once the read model caught up: nothing more.
    await sched.tick();
    await waitFor('last_fire_at in the read model', async () => {
      const row = await db
        .selectFrom('jobs')
        .select('last_fire_at')
        .where('id', '=', jobs.run_all!.id as string)
        .executeTakeFirst();
      return row?.last_fire_at?.getTime() === latest;
    });
    await fakeScheduler(only(ids), clock).tick();
    assert.equal((await firesOf(jobs.run_once!.id as string)).length, 1);
    assert.equal((await firesOf(jobs.skip!.id as string)).length, 0);
    assert.equal((await firesOf(jobs.run_all!.id as string)).length, 10);
    // One minute later each fires once more (skip too: that fire is on time).
    clock.now = latest + MIN + 300;
    await sched.tick();
    assert.equal((await firesOf(jobs.run_once!.id as string)).length, 2);
    assert.equal((await firesOf(jobs.skip!.id as string)).length, 1);
    assert.equal((await firesOf(jobs.run_all!.id as string)).length, 11);
  });

  it('retries a fire that failed transiently (bounded, with backoff), never a rejection; records a fire that cannot run as a skipped run', async () => {
    const job = await upsert({ name: 'retry', schedule: '* * * * *', overlap_policy: 'allow' });
    const id = job.id as string;
    const clock = { now: Math.floor(Date.parse(job.date_updated as string) / MIN) * MIN + MIN + 100 };
    const fireAt = new Date(clock.now - 100).toISOString();
    let calls = 0;
    const flaky: FireTarget = {
      fire: (w, j, at) => {
        calls++;
        if (calls <= 2) return Promise.reject(new Error('TIMEOUT: nats request timed out (simulated)'));
        return commands.fire(w, j, at);
      },
    };
    const sched = fakeScheduler(only([id], flaky), clock);
    await sched.tick();
    assert.equal(sched.pendingRetries, 1);
    for (let i = 0; i < 10 && sched.pendingRetries > 0; i++) {
      clock.now += 1000;
      await sched.tick();
    }
    assert.equal(sched.pendingRetries, 0);
    assert.equal(calls, 3);
    assert.deepEqual(sched.stats, { fired: 1, failed: 2, retried: 1, gaveUp: 0 });
    assert.deepEqual(
      (await firesOf(id)).map((f) => f.fireAt),
      [fireAt],
    );

    // Outside the retry window: given up (and logged).
    const logs: string[] = [];
    const down: FireTarget = { fire: () => Promise.reject(new Error('connection closed')) };
    const job2 = await upsert({ name: 'retry-down', schedule: '* * * * *', overlap_policy: 'allow' });
    const clock2 = { now: Math.floor(Date.parse(job2.date_updated as string) / MIN) * MIN + MIN + 100 };
    const s2 = fakeScheduler(only([job2.id as string], down), clock2, {
      retryWindowMs: 3000,
      log: (m: string) => logs.push(m),
    });
    for (let i = 0; i < 10; i++) {
      await s2.tick();
      clock2.now += 1000;
    }
    assert.equal(s2.stats.gaveUp, 1);
    assert.equal(s2.pendingRetries, 0);
    assert.ok(
      logs.some((l) => /giving up/.test(l)),
      logs.join('\n'),
    );

    // A rejection by the job is not retried.
    const rejecting: FireTarget = { fire: () => Promise.reject(new DomainError('job x is named y')) };
    const logs3: string[] = [];
    const s3 = fakeScheduler(
      only([job2.id as string], rejecting),
      { now: clock2.now + MIN },
      {
        log: (m: string) => logs3.push(m),
      },
    );
    await s3.tick();
    assert.equal(s3.pendingRetries, 0);
    assert.match(logs3.join('\n'), /rejected, not retried: job x is named y/);

    // Nothing deployed (another workspace): the fire is recorded as a skipped run with the reason.
    const u = await newUser(s, 'sched-nodeploy@example.com');
    const j3 = await upsert({ name: 'nodeploy', schedule: '* * * * *' }, u.token, u.workspaceId);
    const at = nextFire('* * * * *', 'UTC', new Date(Date.parse(j3.date_updated as string)))!;
    assert.equal(await commands.fire(u.workspaceId, j3.id as string, at), null);
    const rec = await firesOf(j3.id as string, u.workspaceId);
    assert.equal(rec.length, 1);
    assert.equal(rec[0]!.type, 'ScheduledRunSkipped');
    let runs: Json[] = [];
    await waitFor('the skipped run in the runs read model', async () => {
      const r = await s.call(
        'GET',
        `/api/v1/workspaces/${u.workspaceId}/runs?script_id=${j3.id as string}`,
        undefined,
        u.token,
      );
      runs = (r.json as { items: Json[] }).items;
      return runs.length === 1;
    });
    assert.equal(runs[0]!.runway_status, 'skipped');
    assert.equal(runs[0]!.status, 'cancelled', 'the compatible status of a skipped run');
    assert.match(runs[0]!.message as string, /nothing is deployed/);

    // Deployed, but the job's entry point is not a file of the deployment: a skipped run too.
    const gone = await upsert({ name: 'gone', entry_point: 'gone.py', schedule: '* * * * *' });
    const goneAt = nextFire('* * * * *', 'UTC', new Date(Date.parse(gone.date_updated as string)))!;
    assert.equal(await commands.fire(ws, gone.id as string, goneAt), null);
    const goneFires = await firesOf(gone.id as string);
    assert.equal(goneFires.length, 1);
    assert.equal(goneFires[0]!.type, 'ScheduledRunSkipped');
    const goneEvent = (await store().read(jobRef(ws, gone.id as string))).events.find(
      (e) => e.type === 'ScheduledRunSkipped',
    );
    assert.match(
      (goneEvent?.data as { reason: string }).reason,
      /entry point gone\.py of job gone is not a file of deployment/,
    );
    // Its own entry point deployed: the next fire requests a run.
    const ok = await upsert({ name: 'gone', entry_point: 'tick.py' });
    const okAt = nextFire(
      '* * * * *',
      'UTC',
      new Date(Math.max(goneAt.getTime(), Date.parse(ok.date_updated as string))),
    )!;
    assert.ok((await commands.fire(ws, gone.id as string, okAt))?.runId, 'requested');
    await upsert({ name: 'gone', active: false });
    for (const name of ['retry', 'retry-down']) await upsert({ name, active: false });
  });

  it('a job deactivated or unscheduled just before its fire time makes no run (the scheduler read it as active)', async () => {
    const job = await upsert({ name: 'late-off', schedule: '* * * * *', overlap_policy: 'allow' });
    const id = job.id as string;
    const due = nextFire('* * * * *', 'UTC', new Date(Date.parse(job.date_updated as string)))!;
    // The scheduler planned `due`; the job is deactivated before the fire reaches it.
    await upsert({ name: 'late-off', active: false });
    assert.equal(await commands.fire(ws, id, due), null);
    await upsert({ name: 'late-off', active: true, schedule: null });
    assert.equal(await commands.fire(ws, id, due), null, 'unscheduled');
    assert.deepEqual(await firesOf(id), []);
    // And a scheduler that reads the job now does not plan it at all.
    const clock = { now: due.getTime() + 500 };
    await fakeScheduler(only([id]), clock).tick();
    assert.deepEqual(await firesOf(id), []);
  });

  it('a job deleted just before its fire time makes no run; its runs stay, and its name can be created again', async () => {
    const job = await upsert({ name: 'doomed/job.py', schedule: '* * * * *', overlap_policy: 'allow' });
    const id = job.id as string;
    const manual = await s.call('POST', `${base()}/runs`, {
      script_id_or_name: 'doomed/job.py',
      profile: null,
    });
    assert.equal(manual.status, 201, manual.text);
    const due = nextFire('* * * * *', 'UTC', new Date(Date.parse(job.date_updated as string)))!;
    // The scheduler planned `due`; the job is deleted before the fire reaches it.
    const del = await s.call('DELETE', `${base()}/scripts/doomed/job.py`);
    assert.equal(del.status, 200, del.text);
    assert.deepEqual(del.json, { id, name: 'doomed/job.py', deleted: true });
    assert.equal(await commands.fire(ws, id, due), null);
    const clock = { now: due.getTime() + 500 };
    await fakeScheduler(only([id]), clock).tick();
    assert.deepEqual(await firesOf(id), []);
    // Gone from the API (404 for it, for a second delete and for a run of it), its run kept.
    assert.equal((await s.call('GET', `${base()}/scripts/doomed/job.py`)).status, 404);
    assert.equal((await s.call('DELETE', `${base()}/scripts/doomed/job.py`)).status, 404);
    const run = await s.call('POST', `${base()}/runs`, { script_id_or_name: 'doomed/job.py', profile: null });
    assert.equal(run.status, 404, run.text);
    const runs = await s.call('GET', `${base()}/runs?script_id=${id}`);
    assert.equal((runs.json as { items: unknown[] }).items.length, 1);
    // Created again: the next version and the next run number, never one used before.
    const again = await upsert({ name: 'doomed/job.py' });
    assert.equal(again.id, id);
    assert.equal(again.version, 2);
    assert.equal(again.schedule, null, 'a new job, not the old settings');
    const next = await s.call('POST', `${base()}/runs`, {
      script_id_or_name: 'doomed/job.py',
      profile: null,
    });
    assert.equal((next.json as { number: number }).number, 2);
    await upsert({ name: 'doomed/job.py', active: false });
  });

  it('a job whose zone changes fires at the new zone’s time, with no double and no miss', async () => {
    const job = await upsert({
      name: 'zone',
      schedule: '0 12 * * *',
      timezone: 'UTC',
      overlap_policy: 'allow',
    });
    const id = job.id as string;
    const f1 = nextFire('0 12 * * *', 'UTC', new Date(Date.parse(job.date_updated as string)))!;
    const clock = { now: f1.getTime() + 300 };
    const sched = fakeScheduler(only([id]), clock);
    await sched.tick();
    assert.deepEqual(
      (await firesOf(id)).map((f) => f.fireAt),
      [f1.toISOString()],
    );
    await waitFor('last_fire_at', async () => {
      const row = await db.selectFrom('jobs').select('last_fire_at').where('id', '=', id).executeTakeFirst();
      return row?.last_fire_at?.getTime() === f1.getTime();
    });
    // 12:00 in Tokyo is 03:00 UTC: the next fire is the next day's 03:00 UTC, not 12:00 UTC again.
    const changed = await upsert({ name: 'zone', timezone: 'Asia/Tokyo' });
    const f2 = nextFire('0 12 * * *', 'Asia/Tokyo', f1)!;
    assert.equal(f2.getTime() - f1.getTime(), 15 * 3600_000);
    assert.equal(changed.next_scheduled_run, f2.toISOString());
    // A fire planned in the old zone (stale read) makes no run.
    assert.equal(await commands.fire(ws, id, new Date(f1.getTime() + 24 * 3600_000)), null);
    for (const t of [f1.getTime() + 3600_000, f2.getTime() - 1000, f2.getTime() + 300, f2.getTime() + 900]) {
      clock.now = t;
      await sched.tick();
    }
    assert.deepEqual(
      (await firesOf(id)).map((f) => f.fireAt),
      [f1.toISOString(), f2.toISOString()],
    );
    await upsert({ name: 'zone', active: false });
  });

  it('a schedule changed while a fire is due: the old time makes no run, the new schedule fires once at its first time', async () => {
    const job = await upsert({ name: 'changed', schedule: '0 * * * *', overlap_policy: 'allow' });
    const id = job.id as string;
    const oldDue = nextFire('0 * * * *', 'UTC', new Date(Date.parse(job.date_updated as string)))!;
    const changed = await upsert({ name: 'changed', schedule: '30 * * * *' });
    // The fire the scheduler had planned with the old schedule arrives after the change.
    assert.equal(await commands.fire(ws, id, oldDue), null);
    const newDue = nextFire('30 * * * *', 'UTC', new Date(Date.parse(changed.date_updated as string)))!;
    assert.equal(changed.next_scheduled_run, newDue.toISOString());
    const clock = { now: newDue.getTime() + 300 };
    const a = fakeScheduler(only([id]), clock);
    const b = fakeScheduler(only([id]), clock);
    await Promise.all([a.tick(), b.tick(), a.tick()]);
    assert.deepEqual(
      (await firesOf(id)).map((f) => f.fireAt),
      [newDue.toISOString()],
    );
    await upsert({ name: 'changed', active: false });
  });

  it('DST through scheduler and job: Berlin 30 2 * * * once on spring-forward (03:30 CEST) and fall-back days; New York hourly once per real hour', async () => {
    const berlin = await upsert({
      name: 'dst-berlin',
      schedule: '30 2 * * *',
      timezone: 'Europe/Berlin',
      overlap_policy: 'allow',
    });
    const ny = await upsert({
      name: 'dst-ny',
      schedule: '0 * * * *',
      timezone: 'America/New_York',
      overlap_policy: 'allow',
    });
    const ids = [berlin.id as string, ny.id as string];
    const clock = { now: 0 };
    const sched = fakeScheduler(only(ids), clock);
    /** Ticks every 10 minutes through [from, to] and returns the fire times of the job in (from, to]. */
    const walk = async (id: string, from: string, to: string) => {
      for (let t = Date.parse(from); t <= Date.parse(to); t += 10 * MIN) {
        clock.now = t;
        await sched.tick();
      }
      return (await firesOf(id))
        .map((f) => f.fireAt)
        .filter((f) => Date.parse(f) > Date.parse(from) && Date.parse(f) <= Date.parse(to));
    };
    // In time order: the clock of one scheduler only moves forward.
    const hourly = (from: string) =>
      Array.from({ length: 12 }, (_, i) => new Date(Date.parse(from) + (i + 1) * 3600_000).toISOString());
    // 2027-03-14 (02:00 EST → 03:00 EDT at 07:00Z) and 2027-11-07 (02:00 EDT → 01:00 EST at 06:00Z).
    assert.deepEqual(
      await walk(ny.id as string, '2027-03-14T00:00:00Z', '2027-03-14T12:00:00Z'),
      hourly('2027-03-14T00:00:00Z'),
    );
    // 2027-03-28: 02:00 CET → 03:00 CEST, 02:30 does not exist: once, at 03:30 CEST (01:30Z).
    assert.deepEqual(await walk(berlin.id as string, '2027-03-27T12:00:00Z', '2027-03-29T12:00:00Z'), [
      '2027-03-28T01:30:00.000Z',
      '2027-03-29T00:30:00.000Z',
    ]);
    // 2027-10-31: 03:00 CEST → 02:00 CET, 02:30 happens twice: once, the first (CEST, 00:30Z).
    assert.deepEqual(await walk(berlin.id as string, '2027-10-30T12:00:00Z', '2027-11-01T12:00:00Z'), [
      '2027-10-31T00:30:00.000Z',
      '2027-11-01T01:30:00.000Z',
    ]);
    assert.deepEqual(
      await walk(ny.id as string, '2027-11-07T00:00:00Z', '2027-11-07T12:00:00Z'),
      hourly('2027-11-07T00:00:00Z'),
    );
    const all = (await firesOf(ny.id as string)).map((f) => f.fireAt);
    assert.equal(new Set(all).size, all.length, 'no doubled fire time');
    for (const name of ['dst-berlin', 'dst-ny']) await upsert({ name, active: false });
  });

  it('a redeploy of the workspace keeps the schedule and makes no extra run', async () => {
    const job = await upsert({ name: 'yearly', schedule: '0 0 1 1 *', timezone: 'Europe/Berlin' });
    const before = (await s.call('GET', `${base()}/scripts/yearly`)).json as Json;
    await uploadPackage(s, 'deployments', [
      { path: 'tick.py', content: 'print("tick v2")\n' },
      { path: 'other.py', content: 'print("other")\n' },
    ]);
    const afterDeploy = (await s.call('GET', `${base()}/scripts/yearly`)).json as Json;
    for (const k of [
      'schedule',
      'timezone',
      'version',
      'next_scheduled_run',
      'active',
      'missed_policy',
      'overlap_policy',
    ])
      assert.deepEqual(afterDeploy[k], before[k], k);
    // A scheduler (re)started now finds nothing due.
    await fakeScheduler(only([job.id as string]), { now: Date.now() }).tick();
    assert.deepEqual(await firesOf(job.id as string), []);
    const runs = await s.call('GET', `${base()}/runs?script_id=${job.id as string}`);
    assert.equal((runs.json as { items: unknown[] }).items.length, 0);
  });
});
