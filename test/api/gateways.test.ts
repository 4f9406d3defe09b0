import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { freePort } from '#libs/testing';
import { startTestStack, type TestStack } from '../support/stack.js';
import { createBatchJob, uploadPackage, waitForStatus, type Json } from '../jobs/support.js';
import { readSse } from '../logs/sse.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Two gateways behind "any load balancer": A is the stack's own (in this process), B a gateway
 * process of its own (services/gateway main) with ANOTHER data dir, as on another machine; both
 * share NATS, PostgreSQL and RUNWAY_MASTER_KEY. Each request goes to whichever the test picks.
 */
describe('two gateways: any request may reach either one', () => {
  const masterKey = randomBytes(32).toString('base64');
  let s: TestStack;
  let b: ChildProcess;
  let bUrl = '';
  let bDataDir = '';
  const ws = () => s.workspaceId;
  const callB = async (method: string, path: string, body?: unknown, token: string | null = s.adminToken) => {
    const res = await fetch(`${bUrl}${path}`, {
      method,
      headers: {
        ...(token ? { authorization: `Bearer ${token}` } : {}),
        ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      json = undefined;
    }
    return { status: res.status, json, text };
  };

  before(async () => {
    s = await startTestStack({ RUNWAY_MASTER_KEY: masterKey });
    bDataDir = mkdtempSync(join(tmpdir(), 'runway-gateway-b-'));
    const port = await freePort();
    b = spawn(process.execPath, [join(process.cwd(), 'dist/services/gateway/src/main.js')], {
      env: {
        ...process.env,
        ...s.env.childEnv(),
        NATS_URL: s.env.natsUrl,
        DATABASE_URL: s.env.databaseUrl,
        RUNWAY_DATA_DIR: bDataDir,
        RUNWAY_MASTER_KEY: masterKey,
        RUNWAY_HTTP_PORT: String(port),
        RUNWAY_GRPC_PORT: String(await freePort()),
        RUNWAY_LOG_LEVEL: 'error',
      },
      stdio: ['ignore', 'inherit', 'inherit'],
    });
    bUrl = `http://127.0.0.1:${port}`;
    for (const until = Date.now() + 30_000; ;) {
      if (b.exitCode !== null) throw new Error(`gateway B exited with ${b.exitCode}`);
      const ok = await fetch(`${bUrl}/api/v1/ping`).then(
        (r) => r.status === 200,
        () => false,
      );
      if (ok) break;
      if (Date.now() > until) throw new Error('gateway B did not answer within 30 s');
      await sleep(100);
    }
  });
  after(async () => {
    if (b && b.exitCode === null && b.signalCode === null) {
      const exited = new Promise((r) => b.once('exit', r));
      b.kill('SIGTERM');
      await exited;
    }
    await s.stop();
    rmSync(bDataDir, { recursive: true, force: true });
  });

  it('device flow: code asked on A, pending on B, approved on B, token polled on A; the JWT works on both', async () => {
    const code = await s.call('POST', '/auth/v1/github/device-flow/code', undefined, null);
    assert.equal(code.status, 201, code.text);
    const c = code.json as { device_code: string; user_code: string };
    const pending = await callB(
      'POST',
      '/auth/v1/github/device-flow/token',
      { device_code: c.device_code },
      null,
    );
    assert.equal(pending.status, 428, pending.text);
    const shown = await callB('GET', `/api/v1/device/${c.user_code}`);
    assert.equal(shown.status, 200, shown.text);
    const approve = await callB('POST', '/api/v1/device/approve', { user_code: c.user_code });
    assert.equal(approve.status, 201, approve.text);
    const done = await s.call(
      'POST',
      '/auth/v1/github/device-flow/token',
      { device_code: c.device_code },
      null,
    );
    assert.equal(done.status, 201, done.text);
    const { jwt, email } = done.json as { jwt: string; email: string };
    assert.equal(email, 'admin@runway.local');
    // Consumed: polling again on B does not hand out a second token.
    const again = await callB(
      'POST',
      '/auth/v1/github/device-flow/token',
      { device_code: c.device_code },
      null,
    );
    assert.equal(again.status, 400, again.text);
    // Signed by A, accepted by B (no jwt.key on either: both derive it from the master key).
    for (const get of [
      (p: string) => s.call('GET', p, undefined, jwt),
      (p: string) => callB('GET', p, undefined, jwt),
    ]) {
      const me = await get('/api/v1/me');
      assert.equal(me.status, 200, me.text);
      assert.equal((me.json as Json).email, 'admin@runway.local');
    }
    assert.ok(!existsSync(join(bDataDir, 'jwt.key')) && !existsSync(join(s.dataDir, 'jwt.key')));
    // A forged token (another key) is refused by both.
    const [h, body] = jwt.split('.');
    const forged = `${h}.${body}.${randomBytes(32).toString('base64url')}`;
    assert.equal((await callB('GET', '/api/v1/me', undefined, forged)).status, 401);
  });

  it('a run requested on A is followed live on B (SSE), from the first line to the end', async () => {
    await uploadPackage(s, 'deployments', [
      {
        path: 'live.py',
        content:
          'import time\nfor i in range(1, 21):\n    print(f"line {i}", flush=True)\n    time.sleep(0.05)\n',
      },
    ]);
    await createBatchJob(s, 'live.py');
    const created = await s.call('POST', `/api/v1/workspaces/${ws()}/runs`, {
      script_id_or_name_or_secret: 'live.py',
      profile: null,
    });
    assert.equal(created.status, 201, created.text);
    const runId = (created.json as Json).id as string;
    // At once on B: the run is there (A answered after its read model had it).
    const seen = await callB('GET', `/api/v1/workspaces/${ws()}/runs/${runId}`);
    assert.equal(seen.status, 200, seen.text);
    const res = await readSse(`${bUrl}/api/v1/workspaces/${ws()}/runs/${runId}/logs/stream`, s.adminToken, {
      timeoutMs: 60_000,
    });
    assert.equal(res.status, 200, res.body);
    assert.equal(res.events.at(-1)?.event, 'end');
    const texts = res.events
      .filter((e) => e.event === 'line')
      .map((e) => (JSON.parse(e.data) as { text: string }).text)
      .filter((t) => /^line \d+$/.test(t));
    assert.deepEqual(
      texts,
      Array.from({ length: 20 }, (_, i) => `line ${i + 1}`),
    );
    await waitForStatus(s, runId, ['completed']);
    // Resuming on A from where B's stream was (Last-Event-ID semantics through ?from=) replays the rest.
    const tail = await readSse(
      `${s.url}/api/v1/workspaces/${ws()}/runs/${runId}/logs/stream?from=10`,
      s.adminToken,
      {
        timeoutMs: 30_000,
      },
    );
    assert.equal(tail.status, 200, tail.body);
    assert.equal(tail.events.at(-1)?.event, 'end');
    assert.equal(Number(tail.events.find((e) => e.event === 'line')?.id), 10);
  });
});
