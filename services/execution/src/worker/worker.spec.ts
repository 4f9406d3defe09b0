import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Kysely } from 'kysely';
import type { VersionRef } from '#libs/contracts';
import type { EventStore } from '#libs/eventstore';
import { projectionMigrations, ProjectionRunner } from '#libs/projections';
import { createTestEnvironment, livePidsWithArg, untypedDb, type TestEnvironment } from '#libs/testing';
import { loadConfig } from '#libs/config';
import { createExecutor } from '../executor/index.js';
import { ensureLogsStream, JetStreamLogSink, RunLogReader } from '#libs/run-logs';
import { JobCommands } from '../../../scheduling/src/job/job.handler.js';
import { jobIdFor } from '../../../scheduling/src/job/job-id.js';
import type { WorkspaceVersions } from '../../../scheduling/src/job/workspace-versions.js';
import { executionMigrations, type ExecutionTables } from '../migrations/index.js';
import { runsProjection } from '../run/read-models/runs.projection.js';
import { RunCommands } from '../run/run.handler.js';
import { RunLeases } from './leases.js';
import { writeFileInside, type RunMaterializer } from './materializer.js';
import { LeaseReaper } from './reaper.js';
import { Worker } from './worker.js';
import { executionRegistry } from '../run/run.events.js';

const ws = '6b1f5c1e-1f7e-4a4b-9a55-3c2f1d0e9a11';
const user = '0d5c2a7e-2b4f-4c3a-8e1d-5f6a7b8c9d01';
const deployment: VersionRef = { id: '44444444-4444-4444-8444-444444444444', version: 1 };
const python = process.env.RUNWAY_PYTHON ?? 'python3';
/** The executor of the environment's configuration: the sandbox unless RUNWAY_SANDBOX=off. */
const executor = createExecutor(loadConfig().worker);

/** Deployment files from memory: every test script is a file of deployment 1. */
class MemoryMaterializer implements RunMaterializer {
  constructor(readonly files: Record<string, string>) {}
  async writeDeployment(dir: string) {
    for (const [p, c] of Object.entries(this.files)) writeFileInside(dir, p, c);
  }
  async writeConfiguration(_dotDlt: string, _ws: string, _c: VersionRef, profile: string) {
    return { profile, secretValues: [], warnings: [] };
  }
}

const versions: WorkspaceVersions = {
  latestDeployment: async () => deployment,
  deploymentHasFile: async () => undefined,
  latestConfiguration: async () => null,
};

const scripts: Record<string, string> = {
  'ok.py':
    'import os\nprint("hello from", os.environ["WORKSPACE__PROFILE"], os.environ["RUNTIME__RUN_ID"])\n',
  'exit3.py':
    'import sys\nprint("to stdout")\nfor i in range(60):\n    print(f"err line {i}", file=sys.stderr)\nsys.exit(3)\n',
  'stubborn.py': [
    'import os, signal, subprocess, sys, time',
    'signal.signal(signal.SIGTERM, signal.SIG_IGN)',
    "child = subprocess.Popen([sys.executable, '-c', 'import signal,time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)', os.environ['RUNTIME__RUN_ID']])",
    'print(f"child {child.pid}", flush=True)',
    'time.sleep(600)',
    '',
  ].join('\n'),
  'sleep.py': 'import time\ntime.sleep(600)\n',
  // The job's dlt data dir: the one place a sandboxed run writes that outlives it.
  'mark.py': `import os\nwith open(os.path.join(os.environ["DLT_DATA_DIR"], "marks"), "a") as f:\n    f.write(os.environ["RUNTIME__RUN_ID"] + "\\n")\n`,
};

function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0];
    return state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
}

describe('workers (real JetStream, Postgres and Python)', () => {
  let env: TestEnvironment;
  let store: EventStore;
  let db: Kysely<ExecutionTables>;
  let runner: ProjectionRunner;
  let leases: RunLeases;
  let jobs: JobCommands;
  let runs: RunCommands;
  let dataDir: string;
  const workers: Worker[] = [];
  let logSink: JetStreamLogSink;
  let logReader: RunLogReader;

  const newWorker = async (slots = 2) => {
    const w = new Worker(
      {
        nats: env.nats,
        store,
        leases,
        materializer: new MemoryMaterializer(scripts),
        output: logSink,
        executor,
      },
      { slots, dataDir, python, runTimeoutSeconds: 600, killGraceMs: 1_000, leaseRefreshMs: 500 },
    );
    await w.start();
    workers.push(w);
    return w;
  };

  const request = async (entry: string, opts: { timeoutSeconds?: number } = {}) => {
    await jobs.upsert({
      workspaceId: ws,
      actor: user,
      commandId: crypto.randomUUID(),
      name: entry,
      description: '',
      entryPoint: entry,
      kind: 'batch',
      timeoutSeconds: opts.timeoutSeconds ?? null,
    });
    const r = await jobs.requestRun({
      workspaceId: ws,
      actor: user,
      commandId: crypto.randomUUID(),
      jobId: jobIdFor(ws, entry),
      trigger: 'manual',
      profile: null,
    });
    return r;
  };

  const runRow = (id: string) => db.selectFrom('runs').selectAll().where('id', '=', id).executeTakeFirst();
  const waitFor = async (id: string, statuses: string[], timeoutMs = 30_000) => {
    const until = Date.now() + timeoutMs;
    for (;;) {
      const row = await runRow(id);
      if (row && statuses.includes(row.status)) return row;
      if (Date.now() > until)
        assert.fail(`run ${id} did not reach ${statuses.join('|')} (is ${row?.status})`);
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  const timeline = async (id: string) =>
    (
      await db
        .selectFrom('run_status_timeline')
        .selectAll()
        .where('run_id', '=', id)
        .orderBy('seq')
        .orderBy('idx')
        .execute()
    ).map((t) => t.status);
  const output = async (id: string) => (await logReader.text(ws, id))?.text;

  before(async () => {
    env = await createTestEnvironment();
    await env.migrate([projectionMigrations, executionMigrations]);
    store = env.newStore(executionRegistry());
    await store.ensureStream();
    db = env.newDb<ExecutionTables>();
    runner = new ProjectionRunner(store, untypedDb(db), runsProjection);
    await runner.start();
    leases = await RunLeases.open(env.nats, env.subjectPrefix, 3_000);
    const loc = { eventsStream: store.stream, subjectPrefix: env.subjectPrefix };
    await ensureLogsStream(env.nats, loc);
    logSink = new JetStreamLogSink(env.nats, env.subjectPrefix);
    logReader = new RunLogReader(env.nats, loc);
    jobs = new JobCommands(store, versions);
    runs = new RunCommands(store, db);
    dataDir = mkdtempSync(join(tmpdir(), 'runway-worker-'));
  });
  after(async () => {
    for (const w of workers) await w.stop();
    await runner.stop();
    await env.close();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('runs a script to completion through every status, keeping starting visible', async () => {
    await newWorker();
    const t0 = Date.now();
    const r = await request('ok.py');
    assert.equal(r.number, 1);
    const seen: { status: string; at: number }[] = [];
    const until = Date.now() + 30_000;
    for (;;) {
      const row = await runRow(r.runId);
      if (row && seen.at(-1)?.status !== row.status) seen.push({ status: row.status, at: Date.now() });
      if (row?.status === 'completed' || Date.now() > until) break;
      await new Promise((res) => setTimeout(res, 20));
    }
    const row = await waitFor(r.runId, ['completed']);
    assert.deepEqual(await timeline(r.runId), ['pending', 'starting', 'running', 'finalizing', 'completed']);
    const starting = seen.find((s) => s.status === 'starting');
    const running = seen.find(
      (s) => s.status === 'running' || s.status === 'finalizing' || s.status === 'completed',
    );
    assert.ok(
      starting && running && running.at - t0 >= 2_400,
      `starting until ${running ? running.at - t0 : '?'} ms`,
    );
    assert.equal(row.exit_code, 0);
    assert.ok(row.started_at && row.ended_at && row.duration_ms !== null);
    assert.match((await output(r.runId)) ?? '', new RegExp(`hello from prod ${r.runId}`));
    assert.equal(existsSync(join(dataDir, 'work', r.runId)), false, 'the run directory is removed');
  });

  it('fails a script that exits 3 with its exit code and stderr tail', async () => {
    const r = await request('exit3.py');
    const row = await waitFor(r.runId, ['failed', 'completed']);
    assert.equal(row.status, 'failed');
    assert.equal(row.failure_reason, 'exit_code');
    assert.equal(row.exit_code, 3);
    const tail = row.stderr_tail as unknown as string[];
    assert.equal(tail.length, 50);
    assert.equal(tail.at(-1), 'err line 59');
    assert.deepEqual(await timeline(r.runId), ['pending', 'starting', 'running', 'finalizing', 'failed']);
  });

  it('cancels a script that ignores SIGTERM, and its child, once the group is gone', async () => {
    const r = await request('stubborn.py');
    await waitFor(r.runId, ['running']);
    let childPid = 0;
    for (let i = 0; i < 100 && !childPid; i++) {
      const m = /child (\d+)/.exec((await output(r.runId)) ?? '');
      if (m) childPid = Number(m[1]);
      else await new Promise((res) => setTimeout(res, 100));
    }
    assert.ok(childPid > 0, 'the child reported its pid');
    const row0 = await runRow(r.runId);
    assert.ok(livePidsWithArg(r.runId).length > 0, 'the child runs');
    assert.ok(alive(row0!.pid!));
    const c = await runs.cancel({ workspaceId: ws, actor: user, runId: r.runId });
    assert.equal(c.status, 'cancelling');
    const row = await waitFor(r.runId, ['cancelled']);
    assert.deepEqual(livePidsWithArg(r.runId), [], 'the child is gone');
    assert.equal(alive(row.pid!), false, 'the process is gone');
    assert.deepEqual(await timeline(r.runId), ['pending', 'starting', 'running', 'cancelling', 'cancelled']);
    await assert.rejects(runs.cancel({ workspaceId: ws, actor: user, runId: r.runId }), (err: Error) =>
      /^run 1 is already in a terminal state \(cancelled\)$/.test(err.message),
    );
  });

  it('stops a run at its timeout: SIGTERM, then failed with reason timeout', async () => {
    const r = await request('sleep.py', { timeoutSeconds: 3 });
    const row = await waitFor(r.runId, ['failed', 'completed'], 20_000);
    assert.equal(row.failure_reason, 'timeout');
    assert.equal(row.signal, 'SIGTERM');
    assert.equal(alive(row.pid!), false);
  });

  it('shares work between workers and runs each request exactly once', async () => {
    await newWorker(3);
    const ids = [];
    for (let i = 0; i < 12; i++) ids.push((await request('mark.py')).runId);
    for (const id of ids) await waitFor(id, ['completed'], 60_000);
    const marks = join(dataDir, 'workspaces', ws, 'jobs', jobIdFor(ws, 'mark.py'), 'data', 'prod', 'marks');
    const marked = readFileSync(marks, 'utf8').trim().split('\n');
    assert.deepEqual([...marked].sort(), [...ids].sort(), 'each run executed once');
    const byWorker = new Set(
      (await db.selectFrom('runs').select('worker_id').where('id', 'in', ids).execute()).map(
        (r) => r.worker_id,
      ),
    );
    assert.equal(byWorker.size, 2, 'both workers took runs');
  });

  it('fails a run whose lease expired (worker lost) and never re-runs it', async () => {
    const reaper = new LeaseReaper(db, leases, runs, { intervalMs: 500, graceMs: 1_000 });
    for (const w of workers) await w.stop();
    workers.length = 0;
    const r = await request('ok.py');
    // A claim by a worker that died at once: no lease, no process.
    const lost = new Worker(
      {
        nats: env.nats,
        store,
        leases,
        materializer: new MemoryMaterializer(scripts),
        output: logSink,
        executor,
      },
      {
        slots: 1,
        dataDir,
        python,
        runTimeoutSeconds: 60,
        killGraceMs: 1000,
      },
    );
    const rq = await request('ok.py');
    await runs.handle(
      ws,
      rq.runId,
      {
        type: 'ClaimRun',
        runId: rq.runId,
        jobId: jobIdFor(ws, 'ok.py'),
        number: rq.number,
        workerId: lost.id,
        host: 'h',
      },
      { commandId: 'x', actor: 't' },
    );
    reaper.start();
    const row = await waitFor(rq.runId, ['failed'], 20_000);
    assert.equal(row.failure_reason, 'worker_lost');
    await reaper.stop();
    // A fresh worker takes the other pending request but not the lost one.
    await newWorker();
    await waitFor(r.runId, ['completed']);
    await new Promise((res) => setTimeout(res, 500));
    assert.deepEqual(await timeline(rq.runId), ['pending', 'starting', 'failed']);
  });
});
