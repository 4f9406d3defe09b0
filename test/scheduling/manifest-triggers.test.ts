import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { StoredEvent } from '#libs/eventstore';
import { schedulingRegistry } from '../../services/scheduling/src/job/job.events.js';
import { jobRef } from '../../services/scheduling/src/job/job.handler.js';
import { runRunwayCli } from '../support/cli.js';
import { startTestStack, type TestStack } from '../support/stack.js';
import { uploadPackage, type Json } from '../jobs/support.js';

// The scheduler and the run-end reactor run in a scheduling process of their own (killed and
// restarted below); the stack's in-process scheduling service only answers requests.
process.env.RUNWAY_SCHEDULER = 'off';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * A manifest as dlt-runtime 0.26.1 sends it (`PUT …/deployment_manifest`, engine 1: job objects
 * without engine_version, `refresh` instead of `refresh_propagation`), for a workspace written for
 * this test. Each job's module is its own script (run by the worker as a file).
 */
function job(ref: string, module: string, extra: Json = {}): Json {
  return {
    job_ref: ref,
    entry_point: {
      module,
      function: null,
      job_type: 'batch',
      launcher: 'dlt._workspace.deployment.launchers.module',
    },
    triggers: [],
    execute: { concurrency: 1 },
    expose: { manual: true },
    ...extra,
  };
}

interface ApiRun {
  id: string;
  number: number;
  runway_status: string;
  trigger_source: string | null;
  interval_start: string | null;
  interval_end: string | null;
  date_added: string;
  time_ended: string | null;
}

describe('manifest jobs: schedule, every, job.success / job.fail chains, intervals, backfill, freshness, restart', () => {
  let s: TestStack;
  let ws: string;
  let child: ChildProcess | undefined;
  const started = new Date();
  const base = () => `/api/v1/workspaces/${ws}`;
  const ids: Record<string, string> = {};
  const intervalStart = new Date(Math.floor(started.getTime() / 1000) * 1000 - 10_000).toISOString();
  const manifestJobs = (withTick: boolean): Json[] => [
    ...(withTick
      ? [
          // croniter order: seconds LAST (every 3 s); an interval job (runs carry continuous intervals).
          job('jobs.m.tick', 'tick', {
            triggers: ['schedule:* * * * * */3'],
            interval: { start: intervalStart },
            expose: { manual: true, tags: ['clock'] },
          }),
        ]
      : []),
    job('jobs.m.minutely', 'tick', { triggers: ['every:1m'] }),
    job('jobs.m.ok', 'ok', { expose: { manual: true, tags: ['chain'] } }),
    job('jobs.m.after_ok', 'ok', { triggers: ['job.success:jobs.m.ok'] }),
    job('jobs.m.bad', 'bad', { expose: { manual: true, tags: ['chain'] } }),
    job('jobs.m.after_bad', 'ok', { triggers: ['job.fail:jobs.m.bad'] }),
    job('jobs.m.hourly', 'ok', {
      triggers: ['schedule:0 * * * *'],
      interval: { start: '2026-01-01T00:00:00+00:00' },
    }),
    job('jobs.m.source', 'ok'),
    job('jobs.m.on_deploy', 'ok', { triggers: ['deployment:'] }),
    job('jobs.m.gated', 'ok', {
      triggers: ['schedule:* * * * * */3'],
      freshness: ['job.is_fresh:jobs.m.source'],
    }),
  ];
  const deploy = (jobs: Json[], extra: Json = {}) =>
    s.call('PUT', `${base()}/deployment_manifest`, {
      job_definition_engine_version: 1,
      job_definition_hash: `hash-${jobs.length}`,
      jobs,
      deployment_module: '__deployment__',
      description: 'manifest test workspace',
      ...extra,
    });
  const runsOf = async (ref: string): Promise<ApiRun[]> => {
    const r = await s.call('GET', `${base()}/runs?script_id=${ids[ref]}&limit=200`);
    assert.equal(r.status, 200, r.text);
    return ((r.json as { items: ApiRun[] }).items ?? []).sort((a, b) => a.number - b.number);
  };
  const eventsOf = async (ref: string): Promise<StoredEvent[]> =>
    (await s.env.newStore(schedulingRegistry()).read(jobRef(ws, ids[ref]!))).events;
  const waitFor = async <T>(
    what: string,
    get: () => Promise<T | undefined | false>,
    ms = 40_000,
  ): Promise<T> => {
    const until = Date.now() + ms;
    for (;;) {
      const v = await get();
      if (v) return v;
      if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
      await sleep(250);
    }
  };
  const ended = (r: ApiRun) => ['completed', 'failed', 'cancelled', 'skipped'].includes(r.runway_status);
  function startScheduling(): ChildProcess {
    const c = spawn(process.execPath, [join(process.cwd(), 'dist/services/scheduling/src/main.js')], {
      env: {
        ...process.env,
        ...s.env.childEnv(),
        RUNWAY_DATA_DIR: s.dataDir,
        RUNWAY_SCHEDULER: 'on',
        RUNWAY_LOG_LEVEL: 'error',
        RUNWAY_MIN_SCHEDULE_INTERVAL_SECONDS: '1',
      },
      stdio: ['ignore', 'inherit', 'inherit'],
    });
    child = c;
    return c;
  }

  before(async () => {
    s = await startTestStack({ RUNWAY_WORKER_SLOTS: '8' });
    ws = s.workspaceId;
    await uploadPackage(s, 'deployments', [
      { path: 'tick.py', content: 'print("tick")\n' },
      { path: 'ok.py', content: 'print("ok")\n' },
      { path: 'bad.py', content: 'import sys\nprint("failing")\nsys.exit(3)\n' },
    ]);
    startScheduling();
  });
  after(async () => {
    if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await s.stop();
  });

  it('refuses an invalid manifest with a precise 400 and stores nothing of it', async () => {
    const cases: [Json[], RegExp][] = [
      [[job('jobs.m.x', 'ok', { triggers: ['every:30s'] })], /minimum period is 1 minute/],
      [[job('jobs.m.x', 'ok', { triggers: ['schedule:61 * * * *'] })], /minute 61 out of range/],
      [[job('jobs.m.x', 'ok', { triggers: ['tag:x'] })], /synthetic/],
      [[job('jobs.m.x', 'ok', { triggers: ['job.success:jobs.m.x'] })], /its own success/],
      [[job('jobs.m.x', 'ok', { interval: { start: '2026-01-01T00:00:00Z' } })], /interval requires/],
      [[job('jobs.m.x', 'ok'), job('jobs.m.x', 'ok')], /listed twice/],
      [[job('jobs.m.x', 'ok'), job('nojobs', 'ok')], /job_ref must be/],
    ];
    for (const [jobs, message] of cases) {
      const r = await deploy(jobs);
      assert.equal(r.status, 400, r.text);
      assert.match(r.text, message);
    }
    const list = await s.call('GET', `${base()}/scripts`);
    assert.ok(!list.text.includes('jobs.m.x'), 'no job of a refused manifest was stored');
  });

  it('deploys the manifest: added, then unchanged; a dry run stores nothing', async () => {
    const dry = await deploy(manifestJobs(true), { dry_run: true });
    assert.equal(dry.status, 200, dry.text);
    assert.equal((dry.json as { added: Json[] }).added.length, 10);
    assert.equal(
      (await s.call('GET', `${base()}/scripts/jobs.m.tick`)).status,
      404,
      'dry run stored nothing',
    );

    const r = await deploy(manifestJobs(true));
    assert.equal(r.status, 200, r.text);
    const out = r.json as {
      added: Json[];
      updated: Json[];
      unchanged: Json[];
      archived: Json[];
      warnings: string[];
    };
    assert.equal(out.added.length, 10);
    assert.deepEqual(out.warnings, []);
    for (const a of out.added) ids[a.job_ref as string] = a.id as string;
    const tick = out.added.find((a) => a.job_ref === 'jobs.m.tick')!;
    assert.equal(tick.schedule, '*/3 * * * * *', 'croniter seconds-last became Runway seconds-first');
    assert.deepEqual(tick.triggers, ['schedule:* * * * * */3']);
    assert.equal(tick.default_trigger, 'schedule:* * * * * */3');
    assert.equal(tick.archived, false);

    const again = await deploy(manifestJobs(true));
    assert.equal(again.status, 200, again.text);
    const o2 = again.json as typeof out;
    assert.equal(o2.unchanged.length, 10);
    assert.equal(o2.added.length + o2.updated.length + o2.archived.length, 0);
  });

  it('a scheduled interval job runs every 3 s with continuous intervals from interval.start', async () => {
    const runs = await waitFor('three tick runs', async () => {
      const r = (await runsOf('jobs.m.tick')).filter((x) => x.runway_status === 'completed');
      return r.length >= 3 && r;
    });
    assert.equal(runs[0]!.trigger_source, 'schedule:* * * * * */3');
    assert.equal(runs[0]!.interval_start, intervalStart, 'the first run starts at interval.start');
    for (let i = 1; i < runs.length; i++)
      assert.equal(runs[i]!.interval_start, runs[i - 1]!.interval_end, 'no gap, no overlap');
    for (const r of runs) assert.equal(Date.parse(r.interval_end!) % 3000, 0, 'ends on a 3 s tick');
  });

  it('job.success / job.fail start their downstream jobs; selectors trigger by tag', async () => {
    const t = await s.call('POST', `${base()}/scripts/trigger`, { selectors: ['tag:chain'] });
    assert.equal(t.status, 201, t.text);
    const triggered = (t.json as { triggered: Json[] }).triggered;
    assert.deepEqual(triggered.map((x) => x.job_ref).sort(), ['jobs.m.bad', 'jobs.m.ok']);
    for (const x of triggered) {
      assert.equal(x.status, 'triggered');
      assert.deepEqual(x.matched_triggers, ['tag:chain']);
    }
    const [okRun] = await waitFor('ok ended', async () => {
      const r = await runsOf('jobs.m.ok');
      return r.length === 1 && ended(r[0]!) && r;
    });
    const [badRun] = await waitFor('bad ended', async () => {
      const r = await runsOf('jobs.m.bad');
      return r.length === 1 && ended(r[0]!) && r;
    });
    assert.equal(okRun!.runway_status, 'completed');
    assert.equal(badRun!.runway_status, 'failed');
    const [afterOk] = await waitFor('after_ok requested', async () => {
      const r = await runsOf('jobs.m.after_ok');
      return r.length > 0 && r;
    });
    const [afterBad] = await waitFor('after_bad requested', async () => {
      const r = await runsOf('jobs.m.after_bad');
      return r.length > 0 && r;
    });
    assert.equal(afterOk!.trigger_source, 'job.success:jobs.m.ok');
    assert.equal(afterBad!.trigger_source, 'job.fail:jobs.m.bad');
    assert.ok(Date.parse(afterOk!.date_added) >= Date.parse(okRun!.time_ended!), 'after its upstream ended');
    assert.ok(Date.parse(afterBad!.date_added) >= Date.parse(badRun!.time_ended!));
    console.log(
      `chain: upstream end → downstream requested ${Date.parse(afterOk!.date_added) - Date.parse(okRun!.time_ended!)} ms (success), ${
        Date.parse(afterBad!.date_added) - Date.parse(badRun!.time_ended!)
      } ms (fail)`,
    );
    // A failed upstream starts nothing on success, and the reverse.
    await sleep(1000);
    assert.equal((await runsOf('jobs.m.after_ok')).length, 1);
    assert.equal((await runsOf('jobs.m.after_bad')).length, 1);
  });

  it('a freshness-gated job is skipped until its upstream has completed, then runs', async () => {
    await waitFor('a gated fire skipped', async () =>
      (await eventsOf('jobs.m.gated')).some((e) => e.type === 'ScheduledRunSkipped'),
    );
    const skipped = (await eventsOf('jobs.m.gated')).find((e) => e.type === 'ScheduledRunSkipped')!;
    assert.match(
      (skipped.data as { reason: string }).reason,
      /upstream jobs\.m\.source didn't process any intervals yet/,
    );
    assert.equal(
      (await runsOf('jobs.m.gated')).filter((r) => r.runway_status !== 'skipped').length,
      0,
      'no run before the upstream is fresh',
    );
    const t = await s.call('POST', `${base()}/scripts/trigger`, { job_refs: ['jobs.m.source'] });
    assert.equal(t.status, 201, t.text);
    const src = await waitFor('source completed', async () => {
      const r = await runsOf('jobs.m.source');
      return r[0]?.runway_status === 'completed' && r[0];
    });
    const gated = await waitFor('a gated run', async () => {
      const r = (await runsOf('jobs.m.gated')).filter((x) => x.runway_status !== 'skipped');
      return r.length > 0 && r;
    });
    assert.ok(
      Date.parse(gated[0]!.date_added) >= Date.parse(src.time_ended!),
      'only once the upstream completed',
    );
  });

  it('backfills an interval job by range: one run per hour, with its interval', async () => {
    const r = await s.call('POST', `${base()}/scripts/jobs.m.hourly/backfill`, {
      from: '2026-03-01T00:00:00Z',
      to: '2026-03-01T03:00:00Z',
    });
    assert.equal(r.status, 201, r.text);
    const answer = r.json as { slices: Json[]; runs: Json[]; mode: string };
    assert.equal(
      answer.mode,
      'sequential',
      'one slice at a time (test/scheduling/backfills.test.ts paces them)',
    );
    assert.deepEqual(
      answer.slices.map((x) => [x.interval_start, x.interval_end]),
      [
        ['2026-03-01T00:00:00.000Z', '2026-03-01T01:00:00.000Z'],
        ['2026-03-01T01:00:00.000Z', '2026-03-01T02:00:00.000Z'],
        ['2026-03-01T02:00:00.000Z', '2026-03-01T03:00:00.000Z'],
      ],
    );
    const api = await runsOf('jobs.m.hourly');
    assert.deepEqual(
      api.map((x) => x.interval_start),
      answer.runs.map((x) => x.interval_start),
    );
    assert.deepEqual(
      answer.runs.map((x) => x.interval_start),
      ['2026-03-01T00:00:00.000Z'],
    );
    const bad = await s.call('POST', `${base()}/scripts/jobs.m.hourly/backfill`, {
      from: '2026-03-01T03:00:00Z',
      to: '2026-03-01T01:00:00Z',
    });
    assert.equal(bad.status, 400, bad.text);

    // The same from the CLI: `runway jobs backfill <job_ref> --from --to`.
    const dir = mkdtempSync(join(tmpdir(), 'runway-manifest-'));
    const cfg = mkdtempSync(join(tmpdir(), 'runway-manifest-cfg-'));
    try {
      mkdirSync(join(dir, '.dlt'));
      writeFileSync(join(dir, '.dlt/.workspace'), '');
      const runway = (...args: string[]) => runRunwayCli(s, dir, cfg, ...args);
      const usage = await runway(
        'jobs',
        'backfill',
        'jobs.m.hourly',
        '--from',
        'yesterday',
        '--to',
        '2026-03-02T00:00:00Z',
      );
      assert.equal(usage.code, 2, usage.out + usage.err);
      assert.match(usage.err, /--from "yesterday" is not an ISO 8601 time/);
      const refused = await runway(
        'jobs',
        'backfill',
        'jobs.m.ok',
        '--from',
        '2026-03-02T00:00:00Z',
        '--to',
        '2026-03-02T02:00:00Z',
      );
      assert.equal(refused.code, 1, refused.out + refused.err);
      assert.match(refused.err, /cannot backfill jobs\.m\.ok: .*no schedule: or every: trigger/);
      const ok = await runway(
        'jobs',
        'backfill',
        'jobs.m.hourly',
        '--from',
        '2026-03-02T00:00:00Z',
        '--to',
        '2026-03-02T02:00:00Z',
      );
      assert.equal(ok.code, 0, ok.out + ok.err);
      assert.match(ok.out, /Backfill of jobs\.m\.hourly: 2 run\(s\)/);
      assert.match(ok.out, /\[2026-03-02T01:00:00.000Z, 2026-03-02T02:00:00.000Z\)/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
      rmSync(cfg, { recursive: true, force: true });
    }
  });

  it('a new deployment starts the jobs with a deployment: trigger, once', async () => {
    assert.equal((await runsOf('jobs.m.on_deploy')).length, 0, 'nothing before a new deployment');
    await uploadPackage(s, 'deployments', [
      { path: 'tick.py', content: 'print("tick")\n' },
      { path: 'ok.py', content: 'print("ok, deployment 2")\n' },
      { path: 'bad.py', content: 'import sys\nprint("failing")\nsys.exit(3)\n' },
    ]);
    const [run] = await waitFor('the deployment: run', async () => {
      const r = await runsOf('jobs.m.on_deploy');
      return r.length > 0 && r;
    });
    assert.equal(run!.trigger_source, 'deployment:');
    await sleep(1000);
    assert.equal((await runsOf('jobs.m.on_deploy')).length, 1);
  });

  it('a scheduler killed and restarted doubles nothing and fills the gap in the next interval', async () => {
    const before = (await runsOf('jobs.m.tick')).length;
    child!.kill('SIGKILL');
    await new Promise((r) => child!.once('exit', r));
    await sleep(5000);
    startScheduling();
    await waitFor('ticks after the restart', async () => (await runsOf('jobs.m.tick')).length >= before + 2);
    const fires = (await eventsOf('jobs.m.tick'))
      .filter((e) => e.type === 'RunRequested' || e.type === 'ScheduledRunSkipped')
      .map((e) => (e.data as { fireAt: string }).fireAt);
    assert.equal(new Set(fires).size, fires.length, 'no fire time twice');
    const done = (await runsOf('jobs.m.tick')).filter((r) => r.runway_status === 'completed');
    for (let i = 1; i < done.length; i++)
      assert.equal(done[i]!.interval_start, done[i - 1]!.interval_end, 'continuous across the restart');
    assert.ok(
      done.some((r) => Date.parse(r.interval_end!) - Date.parse(r.interval_start!) > 3000),
      'the first run after the restart covers the missed ticks (run_once)',
    );
  });

  it('every: 1m fires one period after the deploy, interval [now − 1 min, now)', async () => {
    const [run] = await waitFor(
      'the every:1m run',
      async () => {
        const r = await runsOf('jobs.m.minutely');
        return r.length > 0 && r;
      },
      90_000,
    );
    assert.equal(run!.trigger_source, 'every:1m');
    const end = Date.parse(run!.interval_end!);
    assert.equal(end - Date.parse(run!.interval_start!), 60_000);
    assert.ok(
      end - started.getTime() >= 60_000 && end - started.getTime() < 90_000,
      'one period after the deploy',
    );
  });

  it('a manifest without a job archives it: it stops firing and keeps its runs', async () => {
    const r = await deploy(manifestJobs(false));
    assert.equal(r.status, 200, r.text);
    const out = r.json as { archived: Json[]; unchanged: Json[] };
    assert.deepEqual(
      out.archived.map((a) => a.job_ref),
      ['jobs.m.tick'],
    );
    assert.equal(out.archived[0]!.archived, true);
    const n = (await runsOf('jobs.m.tick')).length;
    await sleep(4000);
    assert.equal((await runsOf('jobs.m.tick')).length, n, 'no fire after archiving');
    assert.ok(n > 0, 'its runs stay');
    const run = await s.call('POST', `${base()}/scripts/trigger`, { job_refs: ['jobs.m.tick'] });
    assert.equal(run.status, 404, run.text);
    // An ad-hoc deploy (no deployment module) archives nothing.
    const adhoc = await deploy([job('jobs.adhoc', 'ok')], { deployment_module: null });
    assert.equal(adhoc.status, 200, adhoc.text);
    assert.equal((adhoc.json as { archived: Json[] }).archived.length, 0);
  });
});
