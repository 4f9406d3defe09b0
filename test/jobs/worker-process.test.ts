import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { livePidsWithArg } from '#libs/testing';
import { startStackProcess } from '../support/process.js';
import { startTestStack, type TestStack } from '../support/stack.js';
import { alive, createBatchJob, uploadPackage, waitForStatus, type Json } from './support.js';
import { executionRegistry } from '../../services/execution/src/run/run.events.js';

/**
 * A worker in its own process (services/execution worker-main), on the stack's NATS (as the
 * `worker` user, with only a worker's permissions, given as NATS_USER/NATS_PASSWORD) and database.
 */
async function startWorkerProcess(s: TestStack): Promise<{ child: ChildProcess; id: string }> {
  const server = s.env.natsServer;
  if (!server) throw new Error('the stack has its own nats-server');
  const { child, match } = await startStackProcess(
    s,
    'dist/services/execution/src/worker-main.js',
    /runway worker (\S+) ready/,
    {
      RUNWAY_WORKER_SLOTS: '2',
      RUNWAY_KILL_GRACE_SECONDS: '1',
      // The credentials beside the URL (the rest of the suite has them in NATS_URL).
      NATS_URL: server.anonymousUrl,
      NATS_USER: 'worker',
      NATS_PASSWORD: server.credentials.worker,
    },
  );
  return { child, id: match[1]! };
}

describe('workers as their own processes', () => {
  let s: TestStack;
  let ws: string;
  const children: ChildProcess[] = [];
  const base = () => `/api/v1/workspaces/${ws}`;
  const createRun = (name: string) =>
    s.call('POST', `${base()}/runs`, { script_id_or_name: name, profile: null });

  before(async () => {
    // No worker inside the stack: runs wait until a worker process takes them.
    s = await startTestStack({ RUNWAY_EMBEDDED_WORKERS: '0' });
    ws = s.workspaceId;
    await uploadPackage(s, 'deployments', [
      { path: 'sleep.py', content: 'import time\nprint("sleeping", flush=True)\ntime.sleep(600)\n' },
      { path: 'quick.py', content: 'print("quick")\n' },
      {
        path: 'app.py',
        content:
          'import os\nfrom http.server import HTTPServer, BaseHTTPRequestHandler\nHTTPServer((os.environ["HOST"], int(os.environ["PORT"])), BaseHTTPRequestHandler).serve_forever()\n',
      },
    ]);
    for (const name of ['sleep.py', 'quick.py']) await createBatchJob(s, name);
    const app = await s.call('POST', `${base()}/scripts`, {
      name: 'app.py',
      description: '',
      entry_point: 'app.py',
      script_type: 'interactive',
      active: true,
      profile: null,
      schedule: null,
    });
    assert.equal(app.status, 201, app.text);
  });
  after(async () => {
    for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
    await s.stop();
  });

  it('keeps a run pending with null logs while no worker is there, and cancels it at once', async () => {
    const r = await createRun('quick.py');
    assert.equal(r.status, 201, r.text);
    const id = (r.json as Json).id as string;
    await new Promise((res) => setTimeout(res, 300));
    const logs = await s.call('GET', `${base()}/runs/${id}/logs`);
    assert.equal(logs.status, 200);
    assert.equal((logs.json as Json).logs, null);
    assert.equal(((logs.json as Json).run as Json).status, 'pending');
    const c = await s.call('POST', `${base()}/runs/${id}/cancel`);
    assert.equal(c.status, 201, c.text);
    assert.equal((c.json as Json).status, 'cancelled');
    const run = await waitForStatus(s, id, ['cancelled']);
    assert.deepEqual(
      (run.status_timeline as Json[]).map((t) => t.status),
      ['pending', 'cancelled'],
    );
  });

  it('fails the run of a worker killed with SIGKILL as worker_lost within 30 s; a restarted worker cleans up and never re-runs it', async () => {
    const w1 = await startWorkerProcess(s);
    children.push(w1.child);
    // The cancelled request above is not run by the new worker.
    const r = await createRun('sleep.py');
    const id = (r.json as Json).id as string;
    const running = await waitForStatus(s, id, ['running'], 30_000);
    assert.equal(running.worker_id, w1.id);
    const pid = running.pid as number;
    assert.ok(alive(pid));
    // An interactive app of the same worker (its app slot in the workspace's KV bucket: the worker
    // user may use it) goes with it too.
    const appRun = ((await createRun('app.py')).json as Json).id as string;
    const appRunning = await waitForStatus(s, appRun, ['running', 'failed'], 60_000);
    assert.equal(appRunning.status, 'running', JSON.stringify(appRunning));
    assert.ok(livePidsWithArg(appRun).length > 0);
    const killedAt = Date.now();
    w1.child.kill('SIGKILL');
    const failed = await waitForStatus(s, id, ['failed'], 40_000);
    const elapsed = Date.now() - killedAt;
    console.log(`worker killed → run failed (worker_lost) after ${elapsed} ms`);
    assert.equal(failed.failure_reason, 'worker_lost');
    assert.ok(elapsed < 30_000, `within 30 s (took ${elapsed} ms)`);
    const timeline = (failed.status_timeline as Json[]).map((t) => t.status);
    assert.deepEqual(timeline, ['pending', 'starting', 'running', 'failed']);
    // The run's processes died with their worker (the sandbox's --die-with-parent); a restarted
    // worker on the same data dir removes what the run left (its secrets).
    for (const until = Date.now() + 5_000; alive(pid) && Date.now() < until;)
      await new Promise((res) => setTimeout(res, 50));
    assert.equal(alive(pid), false, 'the run did not outlive its worker');
    for (const until = Date.now() + 5_000; livePidsWithArg(appRun).length > 0 && Date.now() < until;)
      await new Promise((res) => setTimeout(res, 50));
    assert.deepEqual(livePidsWithArg(appRun), [], 'the app did not outlive its worker');
    assert.equal((await waitForStatus(s, appRun, ['failed'], 40_000)).failure_reason, 'worker_lost');
    assert.ok(existsSync(join(s.dataDir, 'work', id)), 'the dead worker left the run directory');
    const w2 = await startWorkerProcess(s);
    children.push(w2.child);
    assert.equal(existsSync(join(s.dataDir, 'work', id)), false, 'the restarted worker removed it');
    const quick = await createRun('quick.py');
    const done = await waitForStatus(s, (quick.json as Json).id as string, ['completed', 'failed'], 30_000);
    assert.equal(done.status, 'completed');
    assert.equal(done.worker_id, w2.id);
    const again = await waitForStatus(s, id, ['failed']);
    assert.deepEqual(
      (again.status_timeline as Json[]).map((t) => t.status),
      timeline,
      'never re-run',
    );
    assert.equal(
      ((await s.call('GET', `${base()}/runs?status=cancelled`)).json as { total: number }).total,
      1,
    );
    w2.child.kill('SIGTERM');
  });

  it('N worker processes share the runs as competing consumers: each run is started once, by one of them', async () => {
    const workers = [];
    for (let i = 0; i < 3; i++) {
      const w = await startWorkerProcess(s);
      children.push(w.child);
      workers.push(w);
    }
    const ids: string[] = [];
    for (let i = 0; i < 12; i++) {
      const r = await createRun('quick.py');
      assert.equal(r.status, 201, r.text);
      ids.push((r.json as Json).id as string);
    }
    const by = new Map<string, number>();
    const store = s.env.newStore(executionRegistry());
    for (const id of ids) {
      const done = await waitForStatus(s, id, ['completed', 'failed'], 60_000);
      assert.equal(done.status, 'completed', JSON.stringify(done));
      const worker = done.worker_id as string;
      assert.ok(
        workers.some((w) => w.id === worker),
        `run ${id} ran on ${worker}`,
      );
      by.set(worker, (by.get(worker) ?? 0) + 1);
      // Once: one RunStarting and one RunStarted in the run's own stream.
      const { events } = await store.read({ workspaceId: ws, type: 'run', id });
      assert.equal(events.filter((e) => e.type === 'RunStarting').length, 1, `run ${id} started twice`);
      assert.equal(events.filter((e) => e.type === 'RunStarted').length, 1, `run ${id} started twice`);
    }
    // 12 runs on 3 workers of 2 slots each: more than one worker took some.
    assert.ok(by.size >= 2, `all runs on one worker: ${JSON.stringify([...by])}`);
    for (const w of workers) w.child.kill('SIGTERM');
  });
});
