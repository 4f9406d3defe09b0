import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { sql } from 'kysely';
import { createKysely } from '#libs/database';
import { ProcessExecutor } from '../../services/execution/src/executor/index.js';
import { collectPipelines } from '../../services/execution/src/worker/pipeline-report.js';
import { startTestStack, type TestStack } from '../support/stack.js';
import { uploadPackage, waitForStatus, type Json } from './support.js';

const root = process.cwd();
const python = join(root, '.venv', 'bin', 'python');
const FIXTURE = join(root, 'test', 'fixtures', 'dlt-workspace');
const fixturePipeline = readFileSync(join(FIXTURE, 'pipeline.py'), 'utf8');

const code = {
  'pipeline.py': fixturePipeline,
  // The fixture's pipeline, then the process kills itself: its exit hook never runs.
  'killed.py': `${fixturePipeline}\n    import os, signal\n    os.kill(os.getpid(), signal.SIGKILL)\n`,
  // A run that forges reports: an oversized one, a symlink to its own secrets, one that is not a report.
  'forge.py': [
    'import json, os',
    'hook = os.environ["PYTHONPATH"]',
    'open(os.path.join(hook, "report-1.json"), "w").write(json.dumps({"pipelines": [], "warnings": ["x" * (5 * 1024 * 1024)]}))',
    'os.symlink(os.path.abspath(".dlt/prod.secrets.toml"), os.path.join(hook, "report-2.json"))',
    'open(os.path.join(hook, "report-3.json"), "w").write(json.dumps({"pipelines": [{"name": "forged"}], "warnings": []}))',
    'print("forged", flush=True)',
    '',
  ].join('\n'),
};

/**
 * The run's pipeline report, written by its exit hook on the way out (no interpreter started in
 * `finalizing`), with a real dlt + duckdb pipeline; the collector as the fallback when the process
 * was killed; forged reports refused.
 */
describe('the pipeline report of a run, on its way out', () => {
  let s: TestStack;
  let ws: string;
  let db: ReturnType<typeof createKysely<unknown>>;
  const jobs = new Map<string, string>();
  before(async () => {
    s = await startTestStack();
    ws = s.workspaceId;
    db = createKysely<unknown>({ url: s.env.databaseUrl, max: 2 });
    await uploadPackage(
      s,
      'deployments',
      Object.entries(code).map(([path, content]) => ({ path, content })),
    );
    const dotDlt = join(FIXTURE, '.dlt');
    await uploadPackage(
      s,
      'configurations',
      readdirSync(dotDlt)
        .filter((f) => f.endsWith('.toml'))
        .map((f) => ({ path: f, content: readFileSync(join(dotDlt, f), 'utf8') })),
    );
    for (const name of Object.keys(code)) {
      const r = await s.call('POST', `/api/v1/workspaces/${ws}/scripts`, {
        name,
        description: '',
        entry_point: name,
        script_type: 'batch',
      });
      assert.equal(r.status, 201, r.text);
      jobs.set(name, (r.json as Json).id as string);
    }
  });
  after(async () => {
    await db.destroy();
    await s.stop();
  });

  const runOf = async (name: string, statuses: string[]) => {
    const r = await s.call('POST', `/api/v1/workspaces/${ws}/runs`, {
      script_id_or_name_or_secret: name,
      profile: null,
    });
    assert.equal(r.status, 201, r.text);
    return waitForStatus(s, (r.json as Json).id as string, statuses, 120_000);
  };
  const reported = async (runId: string) => {
    for (const until = Date.now() + 15_000; ;) {
      const rows = (
        await sql<{
          pipeline_name: string;
          destination: string | null;
          dataset_name: string | null;
          row_counts: unknown;
          loads: unknown;
          tables: unknown;
        }>`SELECT pipeline_name, destination, dataset_name, row_counts, loads, tables FROM run_pipelines WHERE run_id = ${runId}`.execute(
          db,
        )
      ).rows;
      if (rows.length > 0 || Date.now() > until) return rows;
      await new Promise((r) => setTimeout(r, 100));
    }
  };
  const collect = (name: string, since: number) => {
    const data = join(s.dataDir, 'workspaces', ws, 'jobs', jobs.get(name)!, 'data', 'prod');
    return collectPipelines({
      executor: new ProcessExecutor(),
      python,
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: s.dataDir, DLT_DATA_DIR: data },
      cwd: data,
      workspaceId: ws,
      writable: [data],
      readable: [],
      since,
    });
  };

  it('reports the real pipeline, identical to what the collector reads from its files', async () => {
    const run = await runOf('pipeline.py', ['completed', 'failed']);
    assert.equal(run.status, 'completed', JSON.stringify(run));
    const [row, ...more] = await reported(run.id as string);
    assert.ok(row, 'the run reported its pipeline');
    assert.equal(more.length, 0);
    const collected = await collect('pipeline.py', Date.parse(run.time_started as string));
    assert.deepEqual(collected.warnings, []);
    const [p] = collected.pipelines;
    assert.ok(p, `${JSON.stringify(collected)} ${JSON.stringify(run)}`);
    assert.deepEqual(
      {
        name: row.pipeline_name,
        destination: row.destination,
        datasetName: row.dataset_name,
        rowCounts: row.row_counts,
        loads: row.loads,
        tables: row.tables,
      },
      {
        name: p.name,
        destination: p.destination,
        datasetName: p.datasetName,
        rowCounts: p.rowCounts,
        loads: p.loads,
        tables: p.tables,
      },
    );
    assert.equal(p.datasetName, 'shop_prod');
    assert.deepEqual(p.rowCounts, { customers: 2, customers__orders: 3, _dlt_pipeline_state: 1 });
  });

  it('a run killed before its exit hook still ends (signal) and its pipeline is collected', async () => {
    const run = await runOf('killed.py', ['completed', 'failed']);
    assert.equal(run.status, 'failed', JSON.stringify(run));
    assert.equal(run.failure_reason, 'signal');
    assert.equal(run.signal, 'SIGKILL');
    const [row] = await reported(run.id as string);
    assert.ok(row, 'the collector reported the pipeline');
    assert.equal(row.pipeline_name, 'shop');
    assert.deepEqual(row.dataset_name, 'shop_prod');
    const counts = row.row_counts as Record<string, number>;
    assert.deepEqual([counts.customers, counts.customers__orders], [2, 3]);
  });

  it('forged reports are refused: no pipeline reported, the run completes as its process did', async () => {
    const run = await runOf('forge.py', ['completed', 'failed']);
    assert.equal(run.status, 'completed', JSON.stringify(run));
    assert.equal(run.exit_code, 0);
    const details = await s.call('GET', `/api/v1/workspaces/${ws}/runs/${run.id as string}`);
    assert.deepEqual((details.json as Json).pipelines, []);
    assert.deepEqual(await reported(run.id as string).then((rows) => rows.length), 0);
    const forged = await sql<{
      n: number;
    }>`SELECT count(*)::int AS n FROM pipelines WHERE name = 'forged'`.execute(db);
    assert.equal(forged.rows[0]!.n, 0);
  });
});
