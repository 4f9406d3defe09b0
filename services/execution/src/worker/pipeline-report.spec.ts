import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ProcessExecutor } from '../executor/index.js';
import {
  collectPipelines,
  exitHookDirOf,
  installExitHook,
  mergeReports,
  readRunReports,
} from './pipeline-report.js';

const root = process.cwd();
const python = join(root, '.venv', 'bin', 'python');
const SECRET = 'must-not-leak-9c1e';

describe('the pipeline report a run writes on its way out', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'runway-report-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('reports the real fixture pipeline from the exit hook, as the collector would read it', async () => {
    const runDir = join(dir, 'run');
    cpSync(join(root, 'test/fixtures/dlt-workspace'), runDir, { recursive: true });
    const hook = installExitHook(runDir);
    assert.equal(hook, exitHookDirOf(runDir));
    const data = join(dir, 'data');
    mkdirSync(data);
    const env: Record<string, string> = {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      HOME: dir,
      PYTHONPATH: hook,
      DLT_DATA_DIR: data,
      DLT_PROJECT_DIR: runDir,
      RUNTIME__DLTHUB_TELEMETRY: 'false',
    };
    const since = Date.now();
    const r = spawnSync(python, ['pipeline.py'], { cwd: runDir, env, encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    const reports = readRunReports(hook);
    assert.ok(reports, 'the hook wrote a report');
    assert.deepEqual(reports.refused, []);
    const fromHook = mergeReports(reports, since);
    assert.equal(fromHook.pipelines.length, 1);
    const [p] = fromHook.pipelines;
    assert.equal(p!.name, 'shop');
    assert.equal(p!.datasetName, 'shop_dev');
    assert.deepEqual(p!.rowCounts, { customers: 2, customers__orders: 3, _dlt_pipeline_state: 1 });
    assert.equal(p!.loads.length, 1);
    assert.equal(p!.tables.find((t) => t.name === 'customers__orders')?.parent, 'customers');
    // The same pipelines directory read by the collector (a fresh interpreter) gives the same report.
    const collected = await collectPipelines({
      executor: new ProcessExecutor(),
      python,
      env,
      cwd: data,
      workspaceId: 'w',
      writable: [data],
      readable: [],
      since,
    });
    assert.deepEqual(fromHook, collected);
    // A second process that does not use dlt writes nothing.
    rmSync(hook, { recursive: true });
    installExitHook(runDir);
    const plain = spawnSync(python, ['-c', 'print("no dlt here")'], { cwd: runDir, env, encoding: 'utf8' });
    assert.equal(plain.status, 0, plain.stderr);
    assert.equal(readRunReports(hook), undefined, 'no report: the collector is the fallback');
  });

  it("still runs a sitecustomize the hook shadows, and the user's exit code stays", () => {
    const runDir = join(dir, 'chain');
    mkdirSync(runDir);
    const hook = installExitHook(runDir);
    const other = join(dir, 'other-site');
    mkdirSync(other);
    writeFileSync(join(other, 'sitecustomize.py'), 'import builtins\nbuiltins.RUNWAY_CHAINED = True\n');
    const r = spawnSync(python, ['-c', 'import sys; print(RUNWAY_CHAINED); sys.exit(7)'], {
      cwd: runDir,
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', PYTHONPATH: `${hook}:${other}`, DLT_DATA_DIR: dir },
      encoding: 'utf8',
    });
    assert.equal(r.status, 7, r.stderr);
    assert.equal(r.stdout.trim(), 'True');
  });

  it('refuses reports that are too large, not regular files, not JSON or not a report, without their content', () => {
    const hook = join(dir, 'bad');
    mkdirSync(hook);
    const secretFile = join(dir, 'secret.txt');
    writeFileSync(secretFile, JSON.stringify({ pipelines: [], warnings: [SECRET] }));
    writeFileSync(
      join(hook, 'report-1.json'),
      JSON.stringify({ pipelines: [], warnings: ['x'.repeat(2000)] }),
    );
    symlinkSync(secretFile, join(hook, 'report-2.json'));
    writeFileSync(join(hook, 'report-3.json'), `{"pipelines": [${SECRET}`);
    writeFileSync(
      join(hook, 'report-4.json'),
      JSON.stringify({ pipelines: [{ name: SECRET, destination: 5 }], warnings: [] }),
    );
    const fifo = join(hook, 'report-5.json');
    assert.equal(spawnSync('mkfifo', [fifo]).status, 0);
    mkdirSync(join(hook, 'report-6.json'));
    writeFileSync(join(hook, 'other.json'), 'ignored');
    const r = readRunReports(hook, 1000);
    assert.ok(r);
    assert.equal(r.reports.length, 0);
    assert.equal(r.refused.length, 6, r.refused.join('\n'));
    assert.match(r.refused[0]!, /report-1\.json is larger than 1000 bytes/);
    assert.match(r.refused[1]!, /report-2\.json could not be read \(ELOOP\)/);
    assert.match(r.refused[2]!, /report-3\.json is not JSON/);
    assert.match(r.refused[3]!, /report-4\.json does not match the report's schema/);
    assert.match(r.refused[4]!, /report-5\.json is not a regular file/);
    assert.match(r.refused[5]!, /report-6\.json is not a regular file/);
    const merged = mergeReports(r, 0);
    assert.deepEqual(merged.pipelines, []);
    assert.ok(merged.warnings.every((w) => w.startsWith("the run's pipeline report was refused")));
    assert.ok(!JSON.stringify(merged).includes(SECRET), 'nothing of a refused report is repeated');
    // The report directory itself replaced by a symlink: nothing is read through it.
    const elsewhere = join(dir, 'elsewhere');
    mkdirSync(elsewhere);
    writeFileSync(join(elsewhere, 'report-1.json'), JSON.stringify({ pipelines: [], warnings: [SECRET] }));
    const link = join(dir, 'link');
    symlinkSync(elsewhere, link);
    assert.deepEqual(readRunReports(link), { reports: [], refused: ['the report directory was replaced'] });
  });

  it('merges the reports of several processes: per pipeline the latest trace, only this run', () => {
    const p = (name: string, at: string | null, dataset: string) => ({
      name,
      destination: 'duckdb',
      datasetName: dataset,
      schemaNames: [],
      traceStartedAt: at,
      rowCounts: {},
      loads: [],
      tables: [],
    });
    const since = Date.parse('2026-01-01T10:00:00Z');
    const m = mergeReports(
      {
        reports: [
          {
            pipelines: [p('b', '2026-01-01T10:00:05Z', 'old'), p('a', '2026-01-01T10:00:01Z', 'a')],
            warnings: [],
          },
          {
            pipelines: [p('b', '2026-01-01T10:00:09Z', 'new'), p('old', '2025-12-31T10:00:00Z', 'x')],
            warnings: ['w'],
          },
        ],
        refused: [],
      },
      since,
    );
    assert.deepEqual(
      m.pipelines.map((x) => [x.name, x.datasetName]),
      [
        ['a', 'a'],
        ['b', 'new'],
      ],
    );
    assert.deepEqual(m.warnings, ['w']);
  });
});
