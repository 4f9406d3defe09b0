import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startTestStack, type TestStack } from '../support/stack.js';
import type { Json } from './support.js';

const root = process.cwd();
const dltBin = join(root, '.venv', 'bin', 'dlt');
const PROD_KEY = 'prod-api-key-5f1c9e2a7b';

const WORKSPACE: Record<string, string> = {
  '.dlt/.workspace': '',
  '.dlt/config.toml': 'dataset_name = "shop_dev"\n',
  '.dlt/secrets.toml': '[sources.shop]\napi_key = "dev-key-not-secret"\n',
  '.dlt/prod.config.toml': 'dataset_name = "shop_prod"\n',
  '.dlt/prod.secrets.toml': `[sources.shop]\napi_key = "${PROD_KEY}"\n\n[destination.duckdb]\ncredentials = "warehouse.duckdb"\n`,
  '.gitignore': '_storage/\n',
  'shop.py': [
    'import os',
    'import dlt',
    '',
    '@dlt.resource(name="customers", write_disposition="merge", primary_key="id")',
    'def customers():',
    '    yield [',
    '        {"id": 1, "name": "Ada", "orders": [{"order_id": 10, "amount": 12.5}, {"order_id": 11, "amount": 3.0}]},',
    '        {"id": 2, "name": "Grace", "orders": [{"order_id": 12, "amount": 99.9}]},',
    '    ]',
    '',
    '@dlt.source',
    'def shop(api_key: str = dlt.secrets.value):',
    `    print("prod secret:", api_key == "${PROD_KEY}", api_key)`,
    '    return customers',
    '',
    'if __name__ == "__main__":',
    '    pipeline = dlt.pipeline(pipeline_name="shop", destination="duckdb", dataset_name=dlt.config["dataset_name"])',
    '    print("first run:", pipeline.first_run)',
    '    print(pipeline.run(shop()))',
    '    print("dataset:", pipeline.dataset_name)',
    '',
  ].join('\n'),
  'fail.py': 'import sys\nprint("failing on purpose", file=sys.stderr)\nsys.exit(3)\n',
};

describe('jobs and runs with the unmodified dlt runtime CLI (launch, job, job-run, logs, cancel)', () => {
  let s: TestStack;
  let dir: string;
  let jwt: string;
  before(async () => {
    s = await startTestStack({ RUNWAY_KILL_GRACE_SECONDS: '1' });
    dir = mkdtempSync(join(tmpdir(), 'runway-dltlaunch-'));
    // A dlt workspace: a pipeline with nested records into duckdb, a dataset and a secret per profile.
    for (const [path, content] of Object.entries(WORKSPACE)) {
      mkdirSync(dirname(join(dir, path)), { recursive: true });
      writeFileSync(join(dir, path), content);
    }
    // A CLI login token from the device flow, handed over in the environment: the global secrets
    // file (/var/dlt as root) is shared with other test files running at the same time.
    const code = await s.call('POST', '/auth/v1/github/device-flow/code', undefined, null);
    const c = code.json as { device_code: string; user_code: string };
    assert.equal((await s.call('POST', '/api/v1/device/approve', { user_code: c.user_code })).status, 201);
    const login = await s.call(
      'POST',
      '/auth/v1/github/device-flow/token',
      { device_code: c.device_code },
      null,
    );
    jwt = (login.json as { jwt: string }).jwt;
    assert.ok(jwt, login.text);
  });
  after(async () => {
    rmSync(dir, { recursive: true, force: true });
    await s.stop();
  });

  const env = () => ({
    ...process.env,
    RUNTIME__API_BASE_URL: s.api,
    RUNTIME__AUTH_BASE_URL: s.auth,
    RUNTIME__DLTHUB_TELEMETRY: 'false',
    RUNTIME__AUTH_TOKEN: jwt,
    RUNTIME__WORKSPACE_ID: s.workspaceId,
    DLT_DATA_DIR: join(dir, '_storage'),
  });
  // Asynchronous: the server runs in this process, a synchronous spawn would block it.
  const dlt = (...args: string[]) =>
    new Promise<{ code: number | null; out: string }>((resolve) => {
      const child = spawn(dltBin, ['--non-interactive', 'runtime', ...args], { cwd: dir, env: env() });
      let out = '';
      child.stdout.on('data', (d: Buffer) => (out += d.toString()));
      child.stderr.on('data', (d: Buffer) => (out += d.toString()));
      const t = setTimeout(() => child.kill('SIGKILL'), 180_000);
      child.on('exit', (code) => {
        clearTimeout(t);
        resolve({ code, out });
      });
    });

  it('launches a real dlt pipeline under the prod profile and follows it to completed; a second run sees the first', async () => {
    const r = await dlt('launch', 'shop.py');
    assert.equal(r.code, 0, r.out);
    assert.match(r.out, /Job shop\.py created or updated successfully, version #: 1/);
    assert.match(r.out, /Run status: starting/);
    assert.match(
      r.out,
      /prod secret: True \*\*\*/,
      'the prod secret reached the pipeline, masked in the logs',
    );
    assert.match(r.out, /first run: True/);
    assert.match(r.out, /dataset: shop_prod/);
    assert.match(r.out, /Run status: completed/);
    assert.ok(!r.out.includes(PROD_KEY), 'no secret in the output');
    const again = await dlt('launch', 'shop.py', '-d');
    assert.equal(again.code, 0, again.out);
    const runs = await s.call('GET', `/api/v1/workspaces/${s.workspaceId}/runs?limit=1`);
    const second = (runs.json as { items: Json[] }).items[0]!;
    assert.equal(second.number, 2);
    const until = Date.now() + 60_000;
    let text = '';
    while (Date.now() < until) {
      const l = await s.call('GET', `/api/v1/workspaces/${s.workspaceId}/runs/${second.id as string}/logs`);
      text = ((l.json as Json).logs as string | null) ?? '';
      if (['completed', 'failed'].includes(((l.json as Json).run as Json).status as string)) break;
      await new Promise((res) => setTimeout(res, 200));
    }
    assert.match(text, /first run: False/, 'the pipeline state of run 1 is there for run 2');
    // The run's details show the pipeline: tables, the child table, rows per table.
    const first = await s.call('GET', `/api/v1/workspaces/${s.workspaceId}/runs?limit=1&offset=1`);
    const run1 = await s.call(
      'GET',
      `/api/v1/workspaces/${s.workspaceId}/runs/${(first.json as { items: Json[] }).items[0]!.id as string}`,
    );
    const [p] = (run1.json as { pipelines: Json[] }).pipelines;
    assert.ok(p, run1.text);
    assert.equal(p.name, 'shop');
    assert.equal(p.destination, 'duckdb');
    assert.equal(p.dataset_name, 'shop_prod');
    const counts = p.row_counts as Record<string, number>;
    assert.equal(counts.customers, 2);
    assert.equal(counts.customers__orders, 3);
    assert.equal((p.loads as Json[]).length, 1);
    const tables = p.tables as Json[];
    const orders = tables.find((t) => t.name === 'customers__orders')!;
    assert.equal(orders.parent, 'customers');
    assert.equal(orders.rows, 3);
    assert.ok((orders.columns as Json[]).some((c) => c.name === 'amount' && c.data_type === 'double'));
    const pipeline = await s.call('GET', `/api/v1/workspaces/${s.workspaceId}/pipelines/shop`);
    assert.equal(pipeline.status, 200, pipeline.text);
    const pj = pipeline.json as { tables: Json[]; loads: Json[] };
    assert.deepEqual(pj.tables.find((t) => t.name === 'customers')!.children, ['customers__orders']);
    assert.equal(pj.loads.length, 2, 'a load per run');
    // The prod duckdb file holds the rows (the workspace's local dir on the server).
    const db = join(s.dataDir, 'workspaces', s.workspaceId, 'local', 'prod', 'warehouse.duckdb');
    assert.ok(existsSync(db), `${db} exists`);
  });

  it('lists jobs and runs, shows a run, prints its logs', async () => {
    const jobs = await dlt('job', 'list');
    assert.equal(jobs.code, 0, jobs.out);
    assert.match(jobs.out, /shop\.py/);
    const info = await dlt('job', 'shop.py', 'info');
    assert.equal(info.code, 0, info.out);
    const runs = await dlt('job-run', 'shop.py', 'list');
    assert.equal(runs.code, 0, runs.out);
    assert.match(runs.out, /completed/);
    const one = await dlt('job-run', 'shop.py', '1', 'info');
    assert.equal(one.code, 0, one.out);
    const logs = await dlt('logs', 'shop.py');
    assert.equal(logs.code, 0, logs.out);
    assert.match(logs.out, /Run logs for Run # 2 of job shop\.py/);
    assert.match(logs.out, /dataset: shop_prod/);
    const all = await dlt('info');
    assert.equal(all.code, 0, all.out);
  });

  it('reports a failed run, and a cancel of a finished run says it is in a terminal state', async () => {
    const r = await dlt('launch', 'fail.py');
    assert.match(r.out, /Run status: failed/);
    assert.match(r.out, /failing on purpose/);
    const c = await dlt('cancel', 'fail.py');
    assert.notEqual(c.code, 0);
    assert.match(c.out, /terminal state/);
    // schedule cancel --current ignores exactly that error.
    assert.equal((await dlt('schedule', 'fail.py', '*/5 * * * *')).code, 0);
    const sc = await dlt('schedule', 'fail.py', 'cancel', '--current');
    assert.equal(sc.code, 0, sc.out);
  });

  it('creates a run with job-run create and cancels it with cancel', async () => {
    writeFileSync(join(dir, 'slow.py'), 'import time\nprint("slow start", flush=True)\ntime.sleep(600)\n');
    assert.equal((await dlt('deploy')).code, 0);
    assert.equal((await dlt('job', 'slow.py', 'create')).code, 0);
    const created = await dlt('job-run', 'slow.py', 'create');
    assert.equal(created.code, 0, created.out);
    const jobs = await s.call('GET', `/api/v1/workspaces/${s.workspaceId}/runs?limit=1`);
    const run = (jobs.json as { items: Json[] }).items[0]!;
    const until = Date.now() + 30_000;
    while (Date.now() < until) {
      const g = await s.call('GET', `/api/v1/workspaces/${s.workspaceId}/runs/${run.id as string}`);
      if ((g.json as Json).status === 'running') break;
      await new Promise((res) => setTimeout(res, 100));
    }
    const c = await dlt('cancel', 'slow.py');
    assert.equal(c.code, 0, c.out);
    assert.match(c.out, /Successfully requested cancellation of run # 1/);
    const f = await dlt('logs', 'slow.py', '-f');
    assert.equal(f.code, 0, f.out);
    assert.match(f.out, /slow start/);
    const after = await s.call('GET', `/api/v1/workspaces/${s.workspaceId}/runs/${run.id as string}`);
    assert.equal((after.json as Json).status, 'cancelled');
  });
});
