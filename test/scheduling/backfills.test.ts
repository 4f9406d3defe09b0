import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { z } from 'zod';
import type { StoredEvent } from '#libs/eventstore';
import { loadRunwayPackage } from '../../services/gateway/src/grpc/grpc-server.js';
import { schedulingRegistry } from '../../services/scheduling/src/job/job.events.js';
import { jobRef } from '../../services/scheduling/src/job/job.handler.js';
import { jobIdFor } from '../../services/scheduling/src/job/job-id.js';
import { runRunwayCli } from '../support/cli.js';
import { startTestStack, type TestStack } from '../support/stack.js';
import { newUser, uploadPackage, type Json } from '../jobs/support.js';

// The scheduler and the run-end reactor (which paces backfills) run in a scheduling process of
// their own, killed and restarted below; the stack's in-process scheduling service answers requests.
process.env.RUNWAY_SCHEDULER = 'off';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** An hourly interval job as dlt-runtime 0.26.1 sends it; its module is a script of the deployment. */
function job(ref: string, module: string, extra: Json = {}): Json {
  return {
    job_ref: ref,
    entry_point: {
      module,
      function: null,
      job_type: 'batch',
      launcher: 'dlt._workspace.deployment.launchers.module',
    },
    triggers: ['schedule:0 * * * *'],
    interval: { start: '2026-01-01T00:00:00+00:00' },
    execute: { concurrency: 1 },
    ...extra,
  };
}

interface Backfill {
  backfill_id: string;
  job_ref: string;
  mode: string;
  concurrency: number;
  status: string;
  reason: string | null;
  skipped_done: number;
  progress: Record<string, number>;
  slices: {
    index: number;
    interval_start: string;
    interval_end: string;
    status: string;
    run_id: string | null;
  }[];
  runs: { run_id: string; interval_start: string }[];
}

/** The interval start a RunRequested on the job's stream carries. */
const intervalStart = (e: StoredEvent): string | undefined =>
  z.object({ interval: z.object({ start: z.string() }).optional() }).parse(e.data).interval?.start;

const h = (n: number) => `2026-02-01T${String(n).padStart(2, '0')}:00:00.000Z`;

describe('backfills: paced by interval.mode, failing, cancelled, resumed, across a scheduler restart; gRPC', () => {
  let s: TestStack;
  let ws: string;
  let child: ChildProcess | undefined;
  const base = () => `/api/v1/workspaces/${ws}`;
  const files = (flakyFails: boolean) => [
    { path: 'quick.py', content: 'import time\ntime.sleep(0.2)\nprint("slice done")\n' },
    { path: 'slow.py', content: 'import time\ntime.sleep(60)\n' },
    {
      path: 'flaky.py',
      content: flakyFails ? 'import sys\nprint("failing")\nsys.exit(3)\n' : 'print("fixed")\n',
    },
  ];
  const manifest = [
    job('jobs.b.seq', 'quick'),
    job('jobs.b.par', 'quick', {
      interval: { start: '2026-01-01T00:00:00Z', mode: 'parallel' },
      execute: { concurrency: 2 },
    }),
    job('jobs.b.flaky', 'flaky'),
    job('jobs.b.slow', 'slow'),
    job('jobs.b.restart', 'quick'),
    job('jobs.b.plain', 'quick', { triggers: [], interval: undefined }),
    job('jobs.b.gone', 'quick'),
  ];
  const eventsOf = async (ref: string): Promise<StoredEvent[]> =>
    (await s.env.newStore(schedulingRegistry()).read(jobRef(ws, jobIdFor(ws, ref)))).events;
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
      await sleep(200);
    }
  };
  const start = async (ref: string, from: string, to: string, extra: Json = {}): Promise<Backfill> => {
    const r = await s.call('POST', `${base()}/scripts/${ref}/backfill`, { from, to, ...extra });
    assert.equal(r.status, 201, r.text);
    return r.json as Backfill;
  };
  const get = async (id: string): Promise<Backfill> => {
    const r = await s.call('GET', `${base()}/backfills/${id}`);
    assert.equal(r.status, 200, r.text);
    return r.json as Backfill;
  };
  const ended = (id: string, ms = 40_000) =>
    waitFor(
      `backfill ${id} to end`,
      async () => {
        const b = await get(id);
        return b.status !== 'running' && b;
      },
      ms,
    );
  /** The job's own decisions: how many of its runs were in flight at most (RunRequested … RunEnded). */
  const maxInFlight = (events: StoredEvent[]) => {
    let now = 0;
    let max = 0;
    for (const e of events) {
      if (e.type === 'RunRequested') max = Math.max(max, ++now);
      if (e.type === 'RunEnded') now--;
    }
    return max;
  };
  function startScheduling(): ChildProcess {
    const c = spawn(process.execPath, [join(process.cwd(), 'dist/services/scheduling/src/main.js')], {
      env: {
        ...process.env,
        ...s.env.childEnv(),
        RUNWAY_DATA_DIR: s.dataDir,
        RUNWAY_SCHEDULER: 'on',
        RUNWAY_LOG_LEVEL: 'error',
      },
      stdio: ['ignore', 'inherit', 'inherit'],
    });
    child = c;
    return c;
  }

  // One gRPC client for the file: the same application service as REST.
  const Runway = loadRunwayPackage().runway.v1.Runway;
  let client: InstanceType<typeof Runway> | undefined;
  const grpcCall = <T>(name: string, req: object, token?: string) =>
    new Promise<{ err: grpc.ServiceError | null; res: T | undefined }>((resolve) => {
      const method = Runway.service[name]!;
      const md = new grpc.Metadata();
      md.set('authorization', `Bearer ${token ?? s.adminToken}`);
      client!.makeUnaryRequest(
        method.path,
        method.requestSerialize,
        method.responseDeserialize,
        req,
        md,
        (err: grpc.ServiceError | null, res?: T) => resolve({ err, res }),
      );
    });

  before(async () => {
    s = await startTestStack({ RUNWAY_WORKER_SLOTS: '6' });
    ws = s.workspaceId;
    client = new Runway(`127.0.0.1:${s.runway.grpcPort}`, grpc.credentials.createInsecure());
    await uploadPackage(s, 'deployments', files(true));
    startScheduling();
  });
  after(async () => {
    client?.close();
    if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await s.stop();
  });

  it('gRPC DeployManifest deploys the jobs (a viewer may not; a bad definition is INVALID_ARGUMENT)', async () => {
    const req = {
      workspace_id: ws,
      engine_version: 1,
      definition_hash: 'backfills-1',
      jobs_json: JSON.stringify(manifest),
      deployment_module: '__deployment__',
    };
    const viewer = await newUser(s, 'backfill-viewer@example.com', 'viewer');
    assert.equal(
      (await grpcCall('DeployManifest', req, viewer.token)).err?.code,
      grpc.status.PERMISSION_DENIED,
    );
    const bad = await grpcCall('DeployManifest', {
      ...req,
      jobs_json: JSON.stringify([job('nojobs', 'quick')]),
    });
    assert.equal(bad.err?.code, grpc.status.INVALID_ARGUMENT);
    assert.match(bad.err?.details ?? '', /job_ref must be/);
    const r = await grpcCall<{ jobs: { job_ref: string; outcome: string }[]; warnings: string[] }>(
      'DeployManifest',
      req,
    );
    assert.equal(r.err, null, String(r.err));
    assert.deepEqual(
      r.res?.jobs.map((j) => `${j.job_ref}=${j.outcome}`).sort(),
      manifest.map((j) => `${String(j.job_ref)}=added`).sort(),
    );
  });

  it('sequential (default): one slice at a time, each requested only after the previous ended (CLI --wait)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'runway-backfill-'));
    const cfg = mkdtempSync(join(tmpdir(), 'runway-backfill-cfg-'));
    try {
      mkdirSync(join(dir, '.dlt'));
      writeFileSync(join(dir, '.dlt/.workspace'), '');
      const out = await runRunwayCli(
        s,
        dir,
        cfg,
        'jobs',
        'backfill',
        'jobs.b.seq',
        '--from',
        h(0),
        '--to',
        h(3),
        '--wait',
      );
      assert.equal(out.code, 0, out.out + out.err);
      assert.match(
        out.out,
        /Backfill of jobs\.b\.seq: 3 run\(s\) \(backfill [0-9a-f-]{36}, sequential, at most 1 at a time\)/,
      );
      assert.match(out.out, /completed: 3\/3 completed/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
      rmSync(cfg, { recursive: true, force: true });
    }
    const events = await eventsOf('jobs.b.seq');
    // On the job's stream: each slice's RunRequested after the previous run's RunEnded.
    const order = events.flatMap((e) =>
      e.type === 'RunRequested' || e.type === 'RunEnded' || e.type === 'BackfillEnded' ? [e.type] : [],
    );
    assert.deepEqual(order, [
      'RunRequested',
      'RunEnded',
      'RunRequested',
      'RunEnded',
      'RunRequested',
      'RunEnded',
      'BackfillEnded',
    ]);
    const intervals = events.flatMap((e) => (e.type === 'RunRequested' ? [intervalStart(e)] : []));
    assert.deepEqual(intervals, [h(0), h(1), h(2)], 'oldest first');
    // The runs as the API shows them: requested after the previous one ended.
    const runs = (
      (await s.call('GET', `${base()}/runs?script_id=${jobIdFor(ws, 'jobs.b.seq')}&limit=50`)).json as {
        items: { number: number; date_added: string; time_ended: string | null; runway_status: string }[];
      }
    ).items.sort((a, b) => a.number - b.number);
    assert.deepEqual(
      runs.map((r) => r.runway_status),
      ['completed', 'completed', 'completed'],
    );
    for (let i = 1; i < runs.length; i++)
      assert.ok(
        Date.parse(runs[i]!.date_added) >= Date.parse(runs[i - 1]!.time_ended!),
        `run ${i + 1} after run ${i} ended`,
      );

    // Done intervals are left out of the next backfill; reprocess takes them again.
    const again = await s.call('POST', `${base()}/scripts/jobs.b.seq/backfill`, { from: h(0), to: h(3) });
    assert.equal(again.status, 409, again.text);
    assert.match(again.text, /already done/);
    const wider = await start('jobs.b.seq', h(2), h(4));
    assert.deepEqual(
      wider.slices.map((x) => x.interval_start),
      [h(3)],
    );
    assert.equal(wider.skipped_done, 1);
    assert.equal((await ended(wider.backfill_id)).status, 'completed');
  });

  it('parallel with execute.concurrency 2: never more than 2 slices in flight, all of them done', async () => {
    const b = await start('jobs.b.par', h(0), h(4));
    assert.equal(b.mode, 'parallel');
    assert.equal(b.concurrency, 2);
    assert.equal(b.runs.length, 2, 'two requested at once');
    const done = await ended(b.backfill_id);
    assert.equal(done.status, 'completed', JSON.stringify(done));
    assert.equal(done.progress.completed, 4);
    const events = await eventsOf('jobs.b.par');
    assert.equal(maxInFlight(events), 2, 'at most two runs in flight, and two reached');
    assert.equal(events.filter((e) => e.type === 'RunRequested').length, 4);
  });

  it('a failing slice stops a sequential backfill; resume retries it with the fixed code and finishes', async () => {
    const b = await start('jobs.b.flaky', h(0), h(3));
    const failed = await ended(b.backfill_id);
    assert.equal(failed.status, 'failed');
    assert.match(failed.reason ?? '', /slice 1 .* ended failed/);
    assert.deepEqual(
      failed.slices.map((x) => x.status),
      ['failed', 'pending', 'pending'],
      'the rest not requested',
    );
    const events = await eventsOf('jobs.b.flaky');
    assert.equal(events.filter((e) => e.type === 'RunRequested').length, 1);

    await uploadPackage(s, 'deployments', files(false));
    const r = await s.call('POST', `${base()}/backfills/${b.backfill_id}/resume`);
    assert.equal(r.status, 200, r.text);
    assert.equal((r.json as Backfill).status, 'running');
    const done = await ended(b.backfill_id);
    assert.equal(done.status, 'completed', JSON.stringify(done));
    assert.equal(done.slices[0]!.status, 'completed');
    assert.notEqual(done.slices[0]!.run_id, failed.slices[0]!.run_id, 'a new run for the retried slice');
    const again = await s.call('POST', `${base()}/backfills/${b.backfill_id}/cancel`);
    assert.equal(again.status, 409, 'a completed backfill cannot be cancelled');
  });

  it('cancel: the running slice is cancelled, the remaining ones are never requested (gRPC Get/Cancel)', async () => {
    const got = await grpcCall<{ slices: { run_id: string }[]; status: string; backfill_id: string }>(
      'StartBackfill',
      {
        workspace_id: ws,
        id_or_name: 'jobs.b.slow',
        from: h(0),
        to: h(3),
      },
    );
    assert.equal(got.err, null, String(got.err));
    const id = got.res!.backfill_id;
    const runId = got.res!.slices[0]!.run_id;
    assert.ok(runId, 'the first slice was requested');
    await waitFor('the first slice running', async () => {
      const r = await s.call('GET', `${base()}/runs/${runId}`);
      return (r.json as { runway_status: string }).runway_status === 'running';
    });
    const c = await grpcCall<{ status: string; cancelled: number; pending: number }>('CancelBackfill', {
      workspace_id: ws,
      backfill_id: id,
    });
    assert.equal(c.err, null, String(c.err));
    assert.equal(c.res?.status, 'cancelled');
    assert.equal(c.res?.cancelled, 3);
    await waitFor('the run cancelled and its end noted on the job', async () =>
      (await eventsOf('jobs.b.slow')).some((e) => e.type === 'RunEnded'),
    );
    const events = await eventsOf('jobs.b.slow');
    assert.equal(
      events.filter((e) => e.type === 'RunRequested').length,
      1,
      'nothing requested after the cancel',
    );
    const run = await s.call('GET', `${base()}/runs/${runId}`);
    assert.equal((run.json as { runway_status: string }).runway_status, 'cancelled');
    const g = await grpcCall<{ status: string }>('GetBackfill', { workspace_id: ws, backfill_id: id });
    assert.equal(g.res?.status, 'cancelled');
    const twice = await s.call('POST', `${base()}/backfills/${id}/cancel`);
    assert.equal(twice.status, 200, 'cancel again: nothing changes');
    // The CLI: `runway jobs backfill-status|backfill-cancel|backfill-resume <id>`.
    const dir = mkdtempSync(join(tmpdir(), 'runway-backfill-'));
    const cfg = mkdtempSync(join(tmpdir(), 'runway-backfill-cfg-'));
    try {
      mkdirSync(join(dir, '.dlt'));
      writeFileSync(join(dir, '.dlt/.workspace'), '');
      const runway = (...args: string[]) => runRunwayCli(s, dir, cfg, ...args);
      const status = await runway('jobs', 'backfill-status', id);
      assert.equal(status.code, 0, status.out + status.err);
      assert.match(status.out, /cancelled: 0\/3 completed, 0 running, 0 failed, 0 pending, 3 cancelled/);
      const resume = await runway('jobs', 'backfill-resume', id);
      assert.equal(resume.code, 1, resume.out + resume.err);
      assert.match(resume.err, /cannot resume backfill .*: .*was cancelled: start a new one/);
      const unknown = await runway('jobs', 'backfill-cancel', '00000000-0000-4000-8000-000000000000');
      assert.equal(unknown.code, 1, unknown.out + unknown.err);
      assert.match(unknown.err, /not found/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
      rmSync(cfg, { recursive: true, force: true });
    }
  });

  it('a scheduler killed mid-backfill and restarted doubles nothing', async () => {
    const b = await start('jobs.b.restart', h(0), h(3));
    child!.kill('SIGKILL');
    await waitFor('the first slice to end while the scheduler is down', async () => {
      const r = await s.call('GET', `${base()}/runs/${b.runs[0]!.run_id}`);
      return (r.json as { runway_status: string }).runway_status === 'completed';
    });
    assert.equal((await get(b.backfill_id)).progress.requested, 1, 'nothing paced while it is down');
    startScheduling();
    const done = await ended(b.backfill_id);
    assert.equal(done.status, 'completed', JSON.stringify(done));
    const events = await eventsOf('jobs.b.restart');
    const requested = events.flatMap((e) => (e.type === 'RunRequested' ? [intervalStart(e)] : []));
    assert.deepEqual(requested, [h(0), h(1), h(2)], 'each slice once, in order');
    assert.equal(events.filter((e) => e.type === 'BackfillEnded').length, 1);
  });

  it('refuses precisely: empty range, too many slices, a job without interval, an archived job, unknown ids', async () => {
    const cases: [string, Json, number, RegExp][] = [
      ['jobs.b.seq', { from: h(3), to: h(1) }, 400, /empty/],
      [
        'jobs.b.seq',
        { from: '2026-01-01T00:00:00Z', to: '2026-03-01T00:00:00Z' },
        422,
        /more than 500 intervals/,
      ],
      ['jobs.b.plain', { from: h(0), to: h(2) }, 400, /no schedule: or every: trigger/],
      ['jobs.b.seq', { from: 'yesterday', to: h(2) }, 400, /from/],
      ['jobs.b.seq', { from: h(0), to: h(2), extra: 1 }, 400, /extra|unrecognized/i],
      ['jobs.b.nope', { from: h(0), to: h(2) }, 404, /not found/],
    ];
    for (const [ref, body, status, message] of cases) {
      const r = await s.call('POST', `${base()}/scripts/${ref}/backfill`, body);
      assert.equal(r.status, status, `${ref} ${JSON.stringify(body)}: ${r.text}`);
      assert.match(r.text, message);
    }
    // Archived: a module deploy without the job.
    const r = await grpcCall('DeployManifest', {
      workspace_id: ws,
      engine_version: 1,
      definition_hash: 'backfills-2',
      jobs_json: JSON.stringify(manifest.filter((j) => j.job_ref !== 'jobs.b.gone')),
      deployment_module: '__deployment__',
    });
    assert.equal(r.err, null, String(r.err));
    const archived = await s.call('POST', `${base()}/scripts/jobs.b.gone/backfill`, { from: h(0), to: h(2) });
    assert.equal(archived.status, 409, archived.text);
    assert.match(archived.text, /archived/);
    assert.equal(
      (await s.call('GET', `${base()}/backfills/00000000-0000-4000-8000-000000000000`)).status,
      404,
    );
    assert.equal((await s.call('GET', `${base()}/backfills/not-a-uuid`)).status, 404);
    const g = await grpcCall('GetBackfill', {
      workspace_id: ws,
      backfill_id: '00000000-0000-4000-8000-000000000000',
    });
    assert.equal(g.err?.code, grpc.status.NOT_FOUND);
  });
});
