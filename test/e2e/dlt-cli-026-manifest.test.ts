import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { StoredEvent } from '#libs/eventstore';
import { schedulingRegistry } from '../../services/scheduling/src/job/job.events.js';
import { jobRef } from '../../services/scheduling/src/job/job.handler.js';
import { runRunwayCli } from '../support/cli.js';
import { deviceFlowJwt026, runDlt026 } from '../support/dlt-cli-026.js';
import { startTestStack, type TestStack } from '../support/stack.js';

// The scheduler and the run-end reactor run in a scheduling process of their own (SIGKILLed and
// restarted below); the stack's in-process scheduling service only answers requests.
process.env.RUNWAY_SCHEDULER = 'off';

const root = process.cwd();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** The `interval.start` the fixture's interval jobs declare (clock.py). */
const declaredStart = '2026-01-01T00:00:00.000Z';

interface Script {
  id: string;
  name: string;
  schedule: string | null;
  triggers: string[];
  default_trigger: string | null;
  job_definition: {
    entry_point: { module: string; function: string | null; launcher: string; job_type: string };
    interval?: { start: string };
    freshness?: string[];
    refresh?: string;
    expose?: { tags?: string[] };
  };
}
interface ApiRun {
  id: string;
  number: number;
  runway_status: string;
  trigger_source: string | null;
  interval_start: string | null;
  interval_end: string | null;
  refresh: boolean;
  date_added: string;
  time_ended: string | null;
}

/**
 * issue 17's manifest scenarios with the manifest dlt 1.26.0 generates itself: the workspace
 * test/fixtures/dlt-workspace-026-triggers (dlt's `@run.job` decorators) deployed with the
 * unmodified `dlt runtime deploy` of dlt-runtime 0.26.1; runs through dlt's own `job` launcher
 * (the worker on .venv-026). The hand-written-manifest variant is test/scheduling/manifest-triggers.test.ts.
 */
describe('a manifest dlt 1.26.0 generates, deployed by the 0.26.1 CLI: schedules, chains, freshness, backfill, restart', () => {
  let s: TestStack;
  let dir: string;
  let jwt: string;
  let child: ChildProcess | undefined;
  let deployedAt = 0;
  const ids: Record<string, string> = {};
  const ws = () => `/api/v1/workspaces/${s.workspaceId}`;
  const ok = async (...args: string[]) => {
    const r = await runDlt026(s, { cwd: dir, jwt }, ...args);
    assert.equal(r.code, 0, `dlt runtime ${args.join(' ')}:\n${r.out}`);
    return r.out;
  };
  const script = async (ref: string) => {
    const r = await s.call('GET', `${ws()}/scripts/${ref}`);
    assert.equal(r.status, 200, r.text);
    return r.json as Script;
  };
  const runsOf = async (ref: string): Promise<ApiRun[]> => {
    const r = await s.call('GET', `${ws()}/runs?script_id=${ids[ref]}&limit=200`);
    assert.equal(r.status, 200, r.text);
    return ((r.json as { items: ApiRun[] }).items ?? []).sort((a, b) => a.number - b.number);
  };
  const eventsOf = async (ref: string): Promise<StoredEvent[]> =>
    (await s.env.newStore(schedulingRegistry()).read(jobRef(s.workspaceId, ids[ref]!))).events;
  const waitFor = async <T>(
    what: string,
    get: () => Promise<T | undefined | false>,
    ms = 60_000,
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
    const c = spawn(process.execPath, [join(root, 'dist/services/scheduling/src/main.js')], {
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
    s = await startTestStack({
      // Runs go through dlt 1.26.0's own launchers (`@run.job` functions need dlt.hub.run).
      RUNWAY_PYTHON: join(root, '.venv-026', 'bin', 'python'),
      RUNWAY_WORKER_SLOTS: '8',
    });
    dir = mkdtempSync(join(tmpdir(), 'runway-dltws026t-'));
    cpSync(join(root, 'test/fixtures/dlt-workspace-026-triggers'), dir, { recursive: true });
    jwt = await deviceFlowJwt026(s);
    startScheduling();
  });
  after(async () => {
    if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
    await s.stop();
  });

  it('dlt runtime deploy: the jobs and their triggers as dlt declared them', async () => {
    const out = await ok('deploy');
    deployedAt = Date.now();
    assert.match(out, /10 added, 0 updated, 0 archived/, out);
    const refs = [
      'jobs.clock.tick',
      'jobs.clock.minutely',
      'jobs.clock.hourly',
      'jobs.chain.ok',
      'jobs.chain.bad',
      'jobs.chain.after_ok',
      'jobs.chain.after_bad',
      'jobs.fresh.source',
      'jobs.fresh.gated',
    ];
    const scripts = await Promise.all(refs.map(script));
    for (const [i, j] of scripts.entries()) {
      ids[refs[i]!] = j.id;
      assert.equal(j.job_definition.entry_point.launcher, 'dlt._workspace.deployment.launchers.job');
      assert.equal(j.job_definition.entry_point.function, refs[i]!.split('.')[2]);
    }
    const by = (ref: string) => scripts[refs.indexOf(ref)]!;
    assert.deepEqual(by('jobs.clock.tick').triggers, ['schedule:* * * * * */5']);
    assert.equal(by('jobs.clock.tick').schedule, '*/5 * * * * *', "croniter's seconds-last, Runway's first");
    assert.deepEqual(by('jobs.clock.tick').job_definition.interval, { start: '2026-01-01T00:00:00+00:00' });
    assert.deepEqual(by('jobs.clock.tick').job_definition.expose?.tags, ['clock']);
    assert.deepEqual(by('jobs.clock.minutely').triggers, ['every:1m']);
    assert.deepEqual(by('jobs.clock.hourly').triggers, ['schedule:0 * * * *']);
    assert.deepEqual(by('jobs.chain.ok').triggers, []);
    assert.deepEqual(by('jobs.chain.after_ok').triggers, ['job.success:jobs.chain.ok']);
    assert.equal(by('jobs.chain.after_ok').default_trigger, 'job.success:jobs.chain.ok');
    assert.deepEqual(by('jobs.chain.after_bad').triggers, ['job.fail:jobs.chain.bad']);
    assert.deepEqual(by('jobs.fresh.gated').job_definition.freshness, ['job.is_fresh:jobs.fresh.source']);
    assert.equal(by('jobs.fresh.source').job_definition.refresh, 'always', 'dlt 1.26.0 names it refresh');
    // A second deploy changing nothing: test/e2e/dlt-cli-026.test.ts.
  });

  // Independent scenarios, run side by side (the machine's wall time, not its CPU, is the budget).
  describe('side by side', { concurrency: true }, () => {
    it('the scheduled interval job runs every 5 s, its intervals continuous from interval.start', async () => {
      const runs = await waitFor('three tick runs', async () => {
        const r = (await runsOf('jobs.clock.tick')).filter((x) => x.runway_status === 'completed');
        return r.length >= 3 && r;
      });
      assert.equal(runs[0]!.trigger_source, 'schedule:* * * * * */5');
      assert.equal(runs[0]!.interval_start, declaredStart, 'the first run starts at interval.start');
      for (let i = 1; i < runs.length; i++)
        assert.equal(runs[i]!.interval_start, runs[i - 1]!.interval_end, 'no gap, no overlap');
      for (const r of runs) assert.equal(Date.parse(r.interval_end!) % 5000, 0, 'ends on a 5 s tick');
      // dlt's job launcher handed the function the run's interval (run_context), as Runway requested it.
      const asPython = (iso: string) => iso.replace('T', ' ').replace('.000Z', '+00:00');
      const logs = await ok('job-run', 'jobs.clock.tick', String(runs[1]!.number), 'logs');
      assert.ok(
        logs.includes(`tick ${asPython(runs[1]!.interval_start!)} -> ${asPython(runs[1]!.interval_end!)}`),
        logs,
      );
    });

    it('dlt runtime trigger tag:chain: job.success runs after ok, job.fail after bad, not the other way round', async () => {
      const out = await ok('trigger', 'tag:chain');
      assert.match(out, /jobs\.chain\.ok/, out);
      assert.match(out, /jobs\.chain\.bad/, out);
      const okRun = await waitFor('ok ended', async () => {
        const r = await runsOf('jobs.chain.ok');
        return r.length === 1 && ended(r[0]!) && r[0];
      });
      const badRun = await waitFor('bad ended', async () => {
        const r = await runsOf('jobs.chain.bad');
        return r.length === 1 && ended(r[0]!) && r[0];
      });
      assert.equal(okRun.runway_status, 'completed');
      assert.equal(badRun.runway_status, 'failed', 'the function raised');
      const afterOk = await waitFor('after_ok ended', async () => {
        const r = await runsOf('jobs.chain.after_ok');
        return r.length > 0 && ended(r[0]!) && r[0];
      });
      const afterBad = await waitFor('after_bad ended', async () => {
        const r = await runsOf('jobs.chain.after_bad');
        return r.length > 0 && ended(r[0]!) && r[0];
      });
      assert.equal(afterOk.trigger_source, 'job.success:jobs.chain.ok');
      assert.equal(afterBad.trigger_source, 'job.fail:jobs.chain.bad');
      assert.equal(afterOk.runway_status, 'completed');
      assert.equal(afterBad.runway_status, 'completed');
      assert.ok(Date.parse(afterOk.date_added) >= Date.parse(okRun.time_ended!), 'after its upstream ended');
      assert.ok(
        Date.parse(afterBad.date_added) >= Date.parse(badRun.time_ended!),
        'after its upstream ended',
      );
      // Each downstream once: a failed ok would not start after_ok, a succeeded bad not after_bad.
      await sleep(1000);
      assert.equal((await runsOf('jobs.chain.after_ok')).length, 1);
      assert.equal((await runsOf('jobs.chain.after_bad')).length, 1);
    });

    it('the freshness-gated job is skipped until its upstream completed (dlt runtime launch), then runs', async () => {
      await waitFor('a gated fire skipped', async () =>
        (await eventsOf('jobs.fresh.gated')).some((e) => e.type === 'ScheduledRunSkipped'),
      );
      const skipped = (await eventsOf('jobs.fresh.gated')).find((e) => e.type === 'ScheduledRunSkipped')!;
      assert.match(
        (skipped.data as { reason: string }).reason,
        /upstream jobs\.fresh\.source didn't process any intervals yet/,
      );
      assert.equal(
        (await runsOf('jobs.fresh.gated')).filter((r) => r.runway_status !== 'skipped').length,
        0,
        'no run before the upstream is fresh',
      );
      await ok('launch', 'jobs.fresh.source');
      const src = await waitFor('source completed', async () => {
        const r = await runsOf('jobs.fresh.source');
        return r[0] && ended(r[0]) && r[0];
      });
      assert.equal(src.runway_status, 'completed', 'the dlt pipeline loaded into duckdb');
      const gated = await waitFor('a gated run completed', async () => {
        const r = (await runsOf('jobs.fresh.gated')).filter((x) => x.runway_status === 'completed');
        return r.length > 0 && r;
      });
      assert.ok(
        Date.parse(gated[0]!.date_added) >= Date.parse(src.time_ended!),
        'only once the upstream completed',
      );
      // source is refresh="always": its completed run sent one refresh signal down the freshness
      // edge; one run of gated carries it (dlt's launcher hands it over in run_context), later ones not.
      const signalled = await waitFor('a gated run with refresh, then one without', async () => {
        const r = (await runsOf('jobs.fresh.gated')).filter((x) => x.runway_status === 'completed');
        const i = r.findIndex((x) => x.refresh);
        return i >= 0 && r.slice(i + 1).some((x) => !x.refresh) && r;
      });
      assert.equal(signalled.filter((x) => x.refresh).length, 1, 'the signal is consumed once');
      const refreshed = signalled.find((x) => x.refresh)!;
      const log = await ok('job-run', 'jobs.fresh.gated', String(refreshed.number), 'logs');
      assert.match(log, /gated ran, refresh=True/, log);
    });

    it('runway jobs backfill --wait: one run per hour of the range, in order, each after the previous', async () => {
      const cwd = mkdtempSync(join(tmpdir(), 'runway-dltws026t-cli-'));
      const cfg = mkdtempSync(join(tmpdir(), 'runway-dltws026t-cfg-'));
      try {
        mkdirSync(join(cwd, '.dlt'));
        writeFileSync(join(cwd, '.dlt/.workspace'), '');
        const out = await runRunwayCli(
          s,
          cwd,
          cfg,
          'jobs',
          'backfill',
          'jobs.clock.hourly',
          '--from',
          '2026-03-01T00:00:00Z',
          '--to',
          '2026-03-01T03:00:00Z',
          // A full hour may pass during the test: the hourly schedule's own first run (from
          // interval.start to that hour) would complete these hours, and a backfill leaves done
          // intervals out unless told to reprocess them.
          '--reprocess',
          '--wait',
        );
        assert.equal(out.code, 0, out.out + out.err);
        assert.match(out.out, /Backfill of jobs\.clock\.hourly: 3 run\(s\)/);
        assert.match(out.out, /completed: 3\/3 completed/);
      } finally {
        rmSync(cwd, { recursive: true, force: true });
        rmSync(cfg, { recursive: true, force: true });
      }
      // The hourly schedule itself may fire at a full hour meanwhile: only the backfill's runs. The
      // backfill's end is scheduling's read model; a run's end reaches execution's runs read model on
      // its own (a moment later on a loaded machine): wait for the three ends there.
      const runs = await waitFor(
        "the backfill's three runs ended in the runs read model",
        async () => {
          const all = (await runsOf('jobs.clock.hourly')).filter((r) =>
            r.trigger_source?.startsWith('backfill:'),
          );
          return all.length >= 3 && all.every(ended) ? all : undefined;
        },
        30_000,
      );
      assert.deepEqual(
        runs.map((r) => [r.interval_start, r.interval_end, r.runway_status]),
        [
          ['2026-03-01T00:00:00.000Z', '2026-03-01T01:00:00.000Z', 'completed'],
          ['2026-03-01T01:00:00.000Z', '2026-03-01T02:00:00.000Z', 'completed'],
          ['2026-03-01T02:00:00.000Z', '2026-03-01T03:00:00.000Z', 'completed'],
        ],
      );
      for (let i = 1; i < runs.length; i++)
        assert.ok(
          Date.parse(runs[i]!.date_added) >= Date.parse(runs[i - 1]!.time_ended!),
          `slice ${i + 1} after slice ${i}`,
        );
    });
  });

  it('the scheduling service SIGKILLed and restarted doubles no fire; intervals stay continuous', async () => {
    const killedAt = Date.now();
    child!.kill('SIGKILL');
    await new Promise((r) => child!.once('exit', r));
    // Longer than a 5 s tick: at least one fire time passes while no scheduler runs.
    await sleep(6000);
    startScheduling();
    // The first fire after the restart covers the missed ticks: its interval spans the kill.
    await waitFor('a completed run across the kill', async () =>
      (await runsOf('jobs.clock.tick')).some(
        (r) =>
          r.runway_status === 'completed' &&
          Date.parse(r.interval_start!) <= killedAt &&
          Date.parse(r.interval_end!) > killedAt,
      ),
    );
    for (const ref of ['jobs.clock.tick', 'jobs.fresh.gated']) {
      const fires = (await eventsOf(ref))
        .filter((e) => e.type === 'RunRequested' || e.type === 'ScheduledRunSkipped')
        .flatMap((e) => {
          const at = (e.data as { fireAt?: string }).fireAt;
          return at ? [at] : [];
        });
      assert.ok(fires.length > 0, ref);
      assert.equal(new Set(fires).size, fires.length, `${ref}: no fire time twice`);
    }
    const done = (await runsOf('jobs.clock.tick')).filter((r) => r.runway_status === 'completed');
    for (let i = 1; i < done.length; i++)
      assert.equal(done[i]!.interval_start, done[i - 1]!.interval_end, 'continuous across the restart');
  });

  it('every:1m fires one period after the deploy with the interval [fire − 1 min, fire)', async () => {
    const run = await waitFor(
      'the every:1m run',
      async () => {
        const r = await runsOf('jobs.clock.minutely');
        return r.length > 0 && r[0];
      },
      90_000,
    );
    assert.equal(run.trigger_source, 'every:1m');
    const end = Date.parse(run.interval_end!);
    assert.equal(end - Date.parse(run.interval_start!), 60_000);
    assert.ok(end - deployedAt >= 45_000 && end - deployedAt < 90_000, 'one period after the deploy');
  });
});
