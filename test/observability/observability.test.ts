import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { buildPackage } from '#libs/archive';
import { createTestEnvironment, freePort, type TestEnvironment } from '#libs/testing';

/**
 * Observability of a real Runway process (docs/observability.md): `npm start`'s entry point on the
 * test's nats-server and PostgreSQL, with RUNWAY_LOG_FORMAT=json and RUNWAY_OTEL=on exporting to
 * an OTLP/HTTP receiver this test runs. Readiness while it boots, JSON logs, /metrics after real
 * runs (one manual with a live log follower, scheduled fires), one trace across gateway,
 * scheduling and worker for a run request.
 */

type Json = Record<string, unknown>;
interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  attributes?: { key: string; value: { stringValue?: string } }[];
}

const root = process.cwd();
const main = join(root, 'dist/deploy/local/src/main.js');

/** An OTLP/HTTP receiver (JSON encoding): keeps every span it is sent. */
async function startOtlpReceiver(): Promise<{ url: string; spans: OtlpSpan[]; server: Server }> {
  const spans: OtlpSpan[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      if (req.url === '/v1/traces' && String(req.headers['content-type']).includes('json')) {
        const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as {
          resourceSpans?: { scopeSpans?: { spans?: OtlpSpan[] }[] }[];
        };
        for (const rs of body.resourceSpans ?? [])
          for (const ss of rs.scopeSpans ?? []) spans.push(...(ss.spans ?? []));
        res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
      } else res.writeHead(415).end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const a = server.address();
  const port = typeof a === 'object' && a ? a.port : 0;
  return { url: `http://127.0.0.1:${port}`, spans, server };
}

const serviceOf = (s: OtlpSpan) => s.attributes?.find((a) => a.key === 'runway.service')?.value.stringValue;

/** One sample of the exposition: `name{labels} value`, labels matched as a substring. */
function sample(text: string, name: string, labels = ''): number | undefined {
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const rest = line.slice(name.length);
    if (!(rest.startsWith('{') || rest.startsWith(' '))) continue;
    if (labels && !rest.includes(labels)) continue;
    return Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return undefined;
}

async function until<T>(what: string, fn: () => Promise<T | undefined>, ms = 60_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('observability: /metrics, readiness, JSON logs and traces of a real process', () => {
  let env: TestEnvironment;
  let otlp: Awaited<ReturnType<typeof startOtlpReceiver>>;
  let proc: ChildProcess;
  let dataDir: string;
  let url: string;
  let output = '';
  let token = '';
  let ws = '';
  /** What /api/v1/ready answered while the process booted, and whether the admin token existed then. */
  const probes: { status: number; tokenWritten: boolean; body: string }[] = [];

  const call = async (method: string, path: string, body?: unknown) => {
    const res = await fetch(`${url}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${token}`,
        ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
      },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
    const text = await res.text();
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      json = undefined;
    }
    return { status: res.status, text, json };
  };
  const metrics = async () => {
    const res = await fetch(`${url}/metrics`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /text\/plain/);
    return res.text();
  };

  before(async () => {
    env = await createTestEnvironment({ ownNats: true });
    otlp = await startOtlpReceiver();
    dataDir = mkdtempSync(join(tmpdir(), 'runway-obs-'));
    const port = await freePort();
    url = `http://127.0.0.1:${port}`;
    proc = spawn(process.execPath, [main], {
      env: {
        ...process.env,
        ...env.childEnv(),
        RUNWAY_DATA_DIR: dataDir,
        RUNWAY_HTTP_PORT: String(port),
        RUNWAY_GRPC_PORT: String(await freePort()),
        RUNWAY_MIN_SCHEDULE_INTERVAL_SECONDS: '1',
        RUNWAY_LOG_FORMAT: 'json',
        RUNWAY_LOG_LEVEL: 'log',
        RUNWAY_OTEL: 'on',
        OTEL_EXPORTER_OTLP_ENDPOINT: otlp.url,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    proc.stdout!.on('data', (d: Buffer) => (output += d.toString()));
    proc.stderr!.on('data', (d: Buffer) => (output += d.toString()));
    // Probe readiness from the first moment the port answers until the process says it runs.
    await until(
      'Runway to start',
      async () => {
        if (proc.exitCode !== null) throw new Error(`runway exited early:\n${output}`);
        try {
          const res = await fetch(`${url}/api/v1/ready`);
          probes.push({
            status: res.status,
            tokenWritten: existsSync(join(dataDir, 'admin-token')),
            body: await res.text(),
          });
        } catch {
          // not listening yet
        }
        return output.includes('Runway is running at') ? true : undefined;
      },
      120_000,
    );
    token = readFileSync(join(dataDir, 'admin-token'), 'utf8').trim();
    const me = await call('GET', '/api/v1/me');
    ws = ((me.json as Json).default_workspace as Json).id as string;
    const files = [
      {
        path: 'talk.py',
        content: 'import time\nfor i in range(12):\n    print("line", i, flush=True)\n    time.sleep(0.25)\n',
      },
      { path: 'quick.py', content: 'print("quick")\n' },
    ];
    const form = new FormData();
    form.append(
      'file',
      new Blob([new Uint8Array(buildPackage(files))], { type: 'application/x-tar' }),
      'workspace.tar.gz',
    );
    const up = await fetch(`${url}/api/v1/workspaces/${ws}/deployments`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}` },
      body: form,
    });
    assert.equal(up.status, 201, await up.text());
  });

  after(async () => {
    if (proc && proc.exitCode === null) {
      proc.kill('SIGTERM');
      await new Promise((r) => proc.once('exit', r));
    }
    otlp?.server.close();
    await env?.close();
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  it('answers /api/v1/ready 200 only once the first admin token is written, and 200 after the start', async () => {
    assert.ok(probes.length > 0, 'the readiness endpoint was never reached while booting');
    for (const p of probes) {
      if (p.status === 200) assert.ok(p.tokenWritten, `ready before the admin token was written: ${p.body}`);
      else {
        assert.equal(p.status, 503, p.body);
        const body = JSON.parse(p.body) as { status: string; reasons: string[] };
        assert.equal(body.status, 'not ready');
        assert.ok(body.reasons.length > 0);
      }
    }
    const now = await fetch(`${url}/api/v1/ready`);
    assert.equal(now.status, 200);
    assert.deepEqual(await now.json(), { status: 'ready', reasons: [] });
    // Liveness is unchanged.
    assert.equal((await fetch(`${url}/api/v1/ping`)).status, 200);
  });

  it('writes its log lines as JSON objects with time, level, service and msg', () => {
    const lines = output.split('\n').filter((l) => l.startsWith('{'));
    assert.ok(lines.length >= 5, `too few JSON lines:\n${output.slice(0, 3000)}`);
    for (const l of lines) {
      const o = JSON.parse(l) as Json;
      assert.equal(typeof o.time, 'string');
      assert.ok(!Number.isNaN(Date.parse(o.time as string)));
      assert.match(o.level as string, /^(fatal|error|warn|info|debug|trace)$/);
      assert.equal(typeof o.msg, 'string');
    }
    assert.ok(
      lines.some((l) => typeof (JSON.parse(l) as Json).service === 'string'),
      `no line carries its service:\n${lines.slice(0, 10).join('\n')}`,
    );
    // No line in Nest's text format.
    assert.doesNotMatch(output, /^\[Nest\]/m);
  });

  it('exposes every metric with a plausible value after real runs, and traces a run request from gateway to worker', async () => {
    const job = await call('POST', `/api/v1/workspaces/${ws}/scripts`, {
      name: 'talk.py',
      description: 'talks',
      entry_point: 'talk.py',
      script_type: 'batch',
      active: true,
      profile: null,
      schedule: null,
    });
    assert.equal(job.status, 201, job.text);
    const created = await call('POST', `/api/v1/workspaces/${ws}/runs`, {
      script_id_or_name_or_secret: 'talk.py',
      profile: null,
    });
    assert.equal(created.status, 201, created.text);
    const runId = (created.json as Json).id as string;
    // A live follower of its log (runway_log_follow_latency_seconds).
    const follow = await fetch(`${url}/api/v1/workspaces/${ws}/runs/${runId}/logs/stream`, {
      headers: { authorization: `Bearer ${token}` },
    });
    assert.equal(follow.status, 200);
    const followed = await follow.text();
    assert.match(followed, /line 11/);
    const run = await until('the run to complete', async () => {
      const r = await call('GET', `/api/v1/workspaces/${ws}/runs/${runId}`);
      return ['completed', 'failed'].includes((r.json as Json).status as string)
        ? (r.json as Json)
        : undefined;
    });
    assert.equal(run.status, 'completed');
    // A scheduled job (runway_scheduler_fire_lag_seconds).
    const sched = await call('POST', `/api/v1/workspaces/${ws}/scripts`, {
      name: 'quick.py',
      description: 'every 2 s',
      entry_point: 'quick.py',
      script_type: 'batch',
      active: true,
      profile: null,
      schedule: '*/2 * * * * *',
    });
    assert.equal(sched.status, 201, sched.text);
    const text = await until('a scheduled fire and its run in the metrics', async () => {
      const t = await metrics();
      const fired = sample(t, 'runway_scheduler_fire_lag_seconds_count') ?? 0;
      const ended = sample(t, 'runway_runs_ended_total', 'status="completed"') ?? 0;
      return fired >= 1 && ended >= 2 ? t : undefined;
    });
    await call('POST', `/api/v1/workspaces/${ws}/scripts`, {
      name: 'quick.py',
      description: 'paused',
      entry_point: 'quick.py',
      script_type: 'batch',
      active: false,
      profile: null,
      schedule: null,
    });

    assert.ok((sample(text, 'runway_runs_ended_total', 'status="completed"') ?? 0) >= 2);
    const starts = sample(text, 'runway_run_start_latency_seconds_count') ?? 0;
    assert.ok(starts >= 2, `run start latency observed ${starts} times`);
    const startSum = sample(text, 'runway_run_start_latency_seconds_sum') ?? -1;
    assert.ok(startSum > 0 && startSum / starts < 30, `mean run start latency ${startSum / starts} s`);
    const lagSum = sample(text, 'runway_scheduler_fire_lag_seconds_sum') ?? -1;
    const lagCount = sample(text, 'runway_scheduler_fire_lag_seconds_count') ?? 0;
    assert.ok(lagSum >= 0 && lagSum / lagCount < 10, `mean fire lag ${lagSum / lagCount} s`);
    const follows = sample(text, 'runway_log_follow_latency_seconds_count') ?? 0;
    assert.ok(follows >= 1, 'no live log line was observed by the follower');
    assert.ok((sample(text, 'runway_log_follow_latency_seconds_sum') ?? -1) / follows < 5);
    const depth = sample(text, 'runway_queue_depth', 'consumer="run-workers"');
    assert.ok(depth !== undefined && depth >= 0 && depth < 100, `queue depth ${depth}`);
    const lag = sample(text, 'runway_projection_lag', 'projection="runs"');
    assert.ok(lag !== undefined && lag >= 0 && lag < 1000, `projection lag ${lag}`);
    assert.ok(
      (sample(
        text,
        'runway_http_request_duration_seconds_count',
        'method="POST",route="/api/v1/workspaces/:ws/runs",status="201"',
      ) ?? 0) >= 1,
      'POST runs is counted by route',
    );
    assert.match(text, /# TYPE runway_http_request_errors_total counter/);
    assert.match(text, /# TYPE runway_grpc_request_duration_seconds histogram/);
    assert.match(text, /# TYPE runway_grpc_request_errors_total counter/);

    // One trace id spans the gateway, scheduling and worker spans of the run request.
    const spans = await until(
      'the spans of the run request',
      async () => {
        const post = otlp.spans.find(
          (s) => serviceOf(s) === 'gateway' && s.name === 'POST /api/v1/workspaces/:ws/runs',
        );
        if (!post) return undefined;
        const trace = otlp.spans.filter((s) => s.traceId === post.traceId);
        const services = new Set(trace.map(serviceOf));
        return services.has('scheduling') && services.has('worker') ? trace : undefined;
      },
      20_000,
    );
    const byId = new Map(spans.map((s) => [s.spanId, s]));
    const worker = spans.find((s) => serviceOf(s) === 'worker')!;
    // The worker's span descends from the scheduling span, which descends from the gateway's.
    const chain: string[] = [];
    for (let s: OtlpSpan | undefined = worker; s; s = s.parentSpanId ? byId.get(s.parentSpanId) : undefined)
      chain.push(serviceOf(s) ?? '?');
    assert.equal(chain[0], 'worker');
    assert.ok(chain.includes('scheduling'), chain.join(' <- '));
    assert.equal(chain[chain.length - 1], 'gateway', chain.join(' <- '));
  });
});
