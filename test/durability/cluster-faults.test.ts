import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { sql } from 'kysely';
import { rebuildProjection, type CheckpointTable } from '#libs/projections';
import { RunLogReader } from '#libs/run-logs';
import { freePort, untypedDb } from '#libs/testing';
import { runsProjection } from '../../services/execution/src/run/read-models/runs.projection.js';
import { startTestStack, type TestStack } from '../support/stack.js';
import { createBatchJob, uploadPackage, type Json } from '../jobs/support.js';
import { executionRegistry } from '../../services/execution/src/run/run.events.js';

/**
 * Item 4 of issue 12, on loopback with real processes: a 3-node JetStream cluster (R3 everything);
 * two gateways (one in this process with the deployments, configurations, execution and logs
 * services, one of its own), two scheduling services and two workers as processes of their own;
 * a steady load of run requests whose job prints log lines and marks its run in a file. Faults:
 * SIGKILL of one nats-server, then of another after the first came back, then a restart of the
 * whole cluster; then SIGKILL of a gateway, a scheduler and a worker. After each: every
 * acknowledged run request is in the stream, once; every run reaches a final status; no run was
 * executed twice; every completed run's lines are all in LOGS; the runs projection equals a
 * rebuild from the log.
 */

const FINAL = new Set(['completed', 'failed', 'cancelled']);
const LINES = 3;

interface Proc {
  name: string;
  child: ChildProcess;
  output: () => string;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function spawnRunway(
  s: TestStack,
  name: string,
  entry: string,
  env: Record<string, string>,
  ready: (output: string) => Promise<boolean>,
): Promise<Proc> {
  const child = spawn(process.execPath, [join(process.cwd(), entry)], {
    env: {
      ...process.env,
      ...s.env.childEnv(),
      RUNWAY_DATA_DIR: s.dataDir,
      RUNWAY_LOG_LEVEL: 'warn',
      RUNWAY_SANDBOX: 'off',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const until = Date.now() + 60_000;
  while (!(await ready(out))) {
    if (child.exitCode !== null) throw new Error(`${name} exited with ${child.exitCode}: ${out}`);
    if (Date.now() > until) throw new Error(`${name} did not start: ${out}`);
    await sleep(100);
  }
  return { name, child, output: () => out };
}

async function sigkill(p: Proc): Promise<void> {
  if (p.child.exitCode !== null || p.child.signalCode !== null) return;
  const gone = new Promise<void>((r) => p.child.once('exit', () => r()));
  p.child.kill('SIGKILL');
  await gone;
}

async function pings(url: string): Promise<boolean> {
  try {
    return (await fetch(`${url}/api/v1/ping`, { signal: AbortSignal.timeout(1_000) })).ok;
  } catch {
    return false;
  }
}

/**
 * Requests runs at a steady pace through the gateways in turn, as a client behind a load balancer
 * does: a request that fails (connection refused, 5xx, timeout) is sent again with the same
 * Idempotency-Key to the next gateway until one acknowledges it (201) with the run.
 */
class Load {
  readonly acked = new Map<string, string>(); // idempotency key → run id
  retries = 0;
  private running = false;
  private loop: Promise<void> | undefined;
  private readonly inflight = new Set<Promise<void>>();

  constructor(
    private readonly gateways: () => string[],
    private readonly path: string,
    private readonly token: string,
    private readonly everyMs: number,
  ) {}

  start(): void {
    this.running = true;
    this.loop = (async () => {
      while (this.running) {
        const p = this.request(randomUUID()).finally(() => this.inflight.delete(p));
        this.inflight.add(p);
        await sleep(this.everyMs);
      }
    })();
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.loop;
    await Promise.all([...this.inflight]);
  }

  private async request(key: string): Promise<void> {
    const until = Date.now() + 90_000;
    for (let attempt = 0; ; attempt++) {
      const gws = this.gateways();
      const gw = gws[(this.acked.size + attempt) % gws.length]!;
      try {
        const res = await fetch(`${gw}${this.path}`, {
          method: 'POST',
          headers: {
            authorization: `Bearer ${this.token}`,
            'content-type': 'application/json',
            'idempotency-key': key,
          },
          body: JSON.stringify({ script_id_or_name: 'mark.py', profile: null }),
          signal: AbortSignal.timeout(15_000),
        });
        const text = await res.text();
        if (res.status === 201) {
          this.acked.set(key, (JSON.parse(text) as { id: string }).id);
          return;
        }
        if (res.status < 500) throw new Error(`run request refused: ${res.status} ${text}`);
      } catch (err) {
        if (err instanceof Error && /refused: 4/.test(err.message)) throw err;
      }
      this.retries++;
      if (Date.now() > until) throw new Error(`run request ${key} never acknowledged`);
      await sleep(200);
    }
  }
}

describe('Runway on a 3-node cluster under faults (real processes)', { timeout: 420_000 }, () => {
  let s: TestStack;
  let dir: string;
  let markers: string;
  const procs = new Map<string, Proc>();
  let gatewayB = '';

  const startScheduling = async (name: string) =>
    procs.set(
      name,
      await spawnRunway(s, name, 'dist/services/scheduling/src/main.js', {}, (o) =>
        Promise.resolve(/runway scheduling ready/.test(o)),
      ),
    );
  const startWorker = async (name: string) =>
    procs.set(
      name,
      await spawnRunway(
        s,
        name,
        'dist/services/execution/src/worker-main.js',
        {
          RUNWAY_WORKER_SLOTS: '3',
          // As the `worker` user, with only a worker's permissions, on every node.
          NATS_URL: s.env.natsCluster!.anonymousUrl,
          NATS_USER: 'worker',
          NATS_PASSWORD: s.env.natsCluster!.credentials.worker,
        },
        (o) => Promise.resolve(/runway worker \S+ ready/.test(o)),
      ),
    );

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'runway-faults-'));
    markers = join(dir, 'markers');
    s = await startTestStack(
      {
        RUNWAY_EMBEDDED_WORKERS: '0',
        RUNWAY_SERVICES: 'deployments,configurations,execution,logs',
        RUNWAY_SANDBOX: 'off',
      },
      { cluster: 3 },
    );
    const httpPort = await freePort();
    gatewayB = `http://127.0.0.1:${httpPort}`;
    await Promise.all([
      startScheduling('scheduling-1'),
      startScheduling('scheduling-2'),
      startWorker('worker-1'),
      startWorker('worker-2'),
      spawnRunway(
        s,
        'gateway-b',
        'dist/services/gateway/src/main.js',
        { RUNWAY_HTTP_PORT: String(httpPort), RUNWAY_GRPC_PORT: String(await freePort()) },
        () => pings(gatewayB),
      ).then((p) => procs.set('gateway-b', p)),
    ]);
    await uploadPackage(s, 'deployments', [
      {
        path: 'mark.py',
        content: [
          'import os',
          'rid = os.environ["RUNTIME__RUN_ID"]',
          `with open(${JSON.stringify(markers)}, "a") as f:`,
          '    f.write(rid + "\\n")',
          `for i in range(${LINES}):`,
          '    print(f"line {i} of {rid}", flush=True)',
          '',
        ].join('\n'),
      },
    ]);
    await createBatchJob(s, 'mark.py');
  });

  after(async () => {
    // RUNWAY_FAULTS_DUMP=<dir>: each process's output there, to read after a run.
    const dump = process.env.RUNWAY_FAULTS_DUMP;
    if (dump) for (const p of procs.values()) writeFileSync(join(dump, `${p.name}.log`), p.output());
    for (const p of procs.values()) await sigkill(p);
    await s?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const live = () => [s.url, ...(procs.get('gateway-b')?.child.exitCode === null ? [gatewayB] : [])];
  const newLoad = () => new Load(live, `/api/v1/workspaces/${s.workspaceId}/runs`, s.adminToken, 250);

  /** Every guarantee of item 4 over the runs acknowledged so far. */
  async function assertNothingLost(load: Load): Promise<{
    completed: number;
    failed: number;
    reasons: Record<string, number>;
    rereads: number;
    ranButFailed: number;
  }> {
    const ws = s.workspaceId;
    const ids = new Set(load.acked.values());
    assert.ok(ids.size >= 20, `only ${ids.size} runs acknowledged`);
    // Every run ends.
    const status = new Map<string, string>();
    const until = Date.now() + 90_000;
    for (const id of ids) {
      for (;;) {
        const r = await s.call('GET', `/api/v1/workspaces/${ws}/runs/${id}`);
        const st = (r.json as Json | undefined)?.status;
        if (r.status === 200 && typeof st === 'string' && FINAL.has(st)) {
          status.set(id, st);
          break;
        }
        assert.ok(Date.now() < until, `run ${id} did not end: ${r.status} ${r.text.slice(0, 500)}`);
        await sleep(200);
      }
    }
    // Every acknowledged request is in the stream, exactly once (a resent request is the same run).
    const store = s.env.newStore(executionRegistry());
    const requested = new Map<string, number>();
    for await (const c of store.replay({ types: ['RunRequested'], workspaceId: ws }))
      for (const e of c.events) {
        const runId = (e.data as { runId: string }).runId;
        requested.set(runId, (requested.get(runId) ?? 0) + 1);
      }
    for (const id of ids) assert.equal(requested.get(id), 1, `RunRequested of ${id}`);
    // No run executed twice; every completed run ran once.
    const marks = new Map<string, number>();
    if (existsSync(markers))
      for (const l of readFileSync(markers, 'utf8').split('\n').filter(Boolean))
        marks.set(l, (marks.get(l) ?? 0) + 1);
    for (const [id, n] of marks) assert.equal(n, 1, `run ${id} executed ${n} times`);
    let completed = 0;
    let failed = 0;
    let rereads = 0;
    /** Runs whose process ran (marker) but whose run failed: a worker's end not stored, or a worker killed late. */
    let ranButFailed = 0;
    const expected = (id: string) => Array.from({ length: LINES }, (_, i) => `line ${i} of ${id}`);
    for (const [id, st] of status) {
      if (st === 'completed') {
        completed++;
        assert.equal(marks.get(id), 1, `completed run ${id} has no marker`);
        // Every line it printed is in LOGS, once, in order (read from the stream by a fresh reader;
        // a read that finds nothing is tried again, and counted).
        let lines: string[] = [];
        let text = '';
        for (let attempt = 0; attempt < 3; attempt++) {
          const log = await new RunLogReader(s.env.nats, {
            eventsStream: s.env.stream,
            subjectPrefix: s.env.subjectPrefix,
          }).text(ws, id);
          text = log?.text ?? '';
          lines = text.split('\n').filter((l) => l.includes(` of ${id}`));
          if (lines.length === LINES) break;
          rereads++;
          await sleep(500);
        }
        assert.deepEqual(
          lines.map((l) => l.slice(l.indexOf('line '))),
          expected(id),
          `logs of ${id}: ${text}`,
        );
      } else {
        failed++;
        if (marks.has(id)) ranButFailed++;
      }
    }
    const reasons: Record<string, number> = {};
    const db0 = s.env.newDb<CheckpointTable>();
    for (const r of (
      await sql<{ reason: string | null }>`SELECT failure_reason AS reason FROM runs
        WHERE workspace_id = ${ws} AND status = 'failed' AND id = ANY(${[...ids]}::uuid[])`.execute(db0)
    ).rows)
      reasons[r.reason ?? '?'] = (reasons[r.reason ?? '?'] ?? 0) + 1;
    // The runs read model equals a rebuild from the log.
    const db = s.env.newDb<CheckpointTable>();
    const snapshot = async () => ({
      runs: (await sql<Json>`SELECT * FROM runs WHERE workspace_id = ${ws} ORDER BY id`.execute(db)).rows.map(
        (r) => JSON.stringify(r),
      ),
      timeline: (
        await sql<Json>`SELECT t.* FROM run_status_timeline t JOIN runs r ON r.id = t.run_id
          WHERE r.workspace_id = ${ws} ORDER BY t.run_id, t.seq, t.idx`.execute(db)
      ).rows.map((r) => JSON.stringify(r)),
    });
    const live = await snapshot();
    assert.equal(live.runs.length, requested.size);
    await rebuildProjection(store, untypedDb(db), runsProjection);
    assert.deepEqual(await snapshot(), live);
    return { completed, failed, reasons, rereads, ranButFailed };
  }

  it('loses nothing and runs nothing twice when nats-servers are SIGKILLed one after the other, then all restarted', async () => {
    const cluster = s.env.natsCluster!;
    const load = newLoad();
    const t0 = Date.now();
    load.start();
    await sleep(2_000);
    await cluster.nodes[0]!.kill();
    await sleep(2_000);
    await cluster.nodes[0]!.restart(); // waits until it is healthy again
    await cluster.nodes[1]!.kill();
    await sleep(2_000);
    await cluster.nodes[1]!.restart();
    await cluster.restart(); // every node: stopped, started, healthy, every stream with a leader
    await sleep(2_000);
    await load.stop();
    const loadMs = Date.now() - t0;
    const r = await assertNothingLost(load);
    process.stdout.write(
      `# nats faults: ${load.acked.size} runs acknowledged in ${loadMs} ms (${load.retries} resent), ` +
        `${r.completed} completed, ${r.failed} failed ${JSON.stringify(r.reasons)}, ${r.ranButFailed} of them ran, ${r.rereads} log rereads, ` +
        `checked in ${Date.now() - t0 - loadMs} ms\n`,
    );
    assert.ok(r.completed > 0);
  });

  it('loses nothing and runs nothing twice when a gateway, a scheduler and a worker are SIGKILLed', async () => {
    const load = newLoad();
    const t0 = Date.now();
    load.start();
    await sleep(2_000);
    await sigkill(procs.get('gateway-b')!);
    await sleep(2_000);
    await sigkill(procs.get('scheduling-1')!);
    await sleep(2_000);
    await sigkill(procs.get('worker-1')!);
    await sleep(4_000);
    await load.stop();
    const loadMs = Date.now() - t0;
    const r = await assertNothingLost(load);
    process.stdout.write(
      `# process faults: ${load.acked.size} runs acknowledged in ${loadMs} ms (${load.retries} resent), ` +
        `${r.completed} completed, ${r.failed} failed ${JSON.stringify(r.reasons)}, ${r.ranButFailed} of them ran, ${r.rereads} log rereads, ` +
        `checked in ${Date.now() - t0 - loadMs} ms\n`,
    );
    assert.ok(r.completed > 0);
  });
});
