import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { createKysely, databaseUnreachable } from '#libs/database';
import { readiness } from '#libs/observability';
import { freePort } from '#libs/testing';
import { startStackProcess } from '../support/process.js';
import { startTestStack, type TestStack } from '../support/stack.js';

describe('readiness and the probe port', () => {
  let s: TestStack;
  let worker: ChildProcess | undefined;
  before(async () => {
    s = await startTestStack();
  });
  after(async () => {
    if (worker && worker.exitCode === null) {
      worker.kill('SIGTERM');
      await new Promise((r) => worker!.once('exit', r));
    }
    await s.stop();
  });

  it('answers /api/v1/ready 503 with the reasons while a condition is not met, 200 once it is', async () => {
    const ready = async () => {
      const r = await fetch(`${s.url}/api/v1/ready`);
      return { status: r.status, body: (await r.json()) as { status: string; reasons: string[] } };
    };
    assert.deepEqual(await ready(), { status: 200, body: { status: 'ready', reasons: [] } });
    readiness.require('test-condition', 'held by the test');
    try {
      assert.deepEqual(await ready(), {
        status: 503,
        body: { status: 'not ready', reasons: ['held by the test'] },
      });
    } finally {
      readiness.satisfy('test-condition');
    }
    // A database that does not answer: a real connection refused, reported with its reason.
    const dead = createKysely<unknown>({ url: `postgres://runway@127.0.0.1:${await freePort()}/none` });
    const remove = readiness.addCheck('dead-database', () => databaseUnreachable(dead));
    try {
      const r = await ready();
      assert.equal(r.status, 503);
      assert.equal(r.body.reasons.length, 1);
      assert.match(r.body.reasons[0]!, /^PostgreSQL unreachable: /);
    } finally {
      remove();
      await dead.destroy();
    }
    assert.equal((await ready()).status, 200);
    // Liveness does not depend on readiness.
    assert.equal((await fetch(`${s.url}/api/v1/ping`)).status, 200);
  });

  it('serves /healthz, /readyz and /metrics on RUNWAY_METRICS_PORT of a worker process', async () => {
    const port = await freePort();
    const started = await startStackProcess(s, 'dist/services/execution/src/worker-main.js', /ready \(pid/, {
      RUNWAY_METRICS_PORT: String(port),
    });
    worker = started.child;
    const base = `http://127.0.0.1:${port}`;
    assert.equal((await fetch(`${base}/healthz`)).status, 200);
    const ready = await fetch(`${base}/readyz`);
    assert.equal(ready.status, 200);
    assert.deepEqual(await ready.json(), { status: 'ready', reasons: [] });
    const m = await fetch(`${base}/metrics`);
    assert.equal(m.status, 200);
    const text = await m.text();
    assert.match(text, /^runway_queue_depth\{consumer="run-workers"\} \d+$/m);
    assert.match(text, /^runway_process_cpu_user_seconds_total \d/m);
    assert.equal((await fetch(`${base}/nothing`)).status, 404);
  });
});
