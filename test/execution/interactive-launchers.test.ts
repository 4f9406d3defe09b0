import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { livePidsWithArg } from '#libs/testing';
import { ProcessExecutor } from '../../services/execution/src/executor/process-executor.js';
import {
  applyAppLauncher,
  type AppLaunch,
} from '../../services/execution/src/worker/interactive/app-prepare.js';
import type { RunRequestedEvent } from '../../services/execution/src/worker/run-requested.js';
import { startTestStack, type TestStack } from '../support/stack.js';
import { uploadPackage, type Json } from '../jobs/support.js';

// The worker runs dlt 1.26.0 (.venv-026) with marimo and fastmcp: dlt's interactive launchers.
const root = process.cwd();
const PY_026 = join(root, '.venv-026', 'bin', 'python');
const PY_120 = join(root, '.venv', 'bin', 'python');
process.env.RUNWAY_PYTHON = PY_026;

const IDLE_SECONDS = 10;
const L = 'dlt._workspace.deployment.launchers';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const NOTEBOOK = `import marimo

app = marimo.App()


@app.cell
def _():
    import marimo as mo
    mo.md("hello from a launcher notebook")
    return


if __name__ == "__main__":
    app.run()
`;

/** A FastMCP server at module level (the mcp launcher finds it) and jobs for the job launcher. */
const TOOLS_PY = `from fastmcp import FastMCP
from dlt.hub import run

mcp = FastMCP("runway-launcher-tools")


@mcp.tool
def add(a: int, b: int) -> int:
    return a + b


@run.job
def served():
    return FastMCP("runway-job-mcp")


@run.job
def api():
    print("an api job that serves nothing")
`;

function interactive(
  ref: string,
  module: string,
  fn: string | null,
  launcher: string,
  iface: 'gui' | 'mcp' | 'rest_api',
): Json {
  return {
    job_ref: ref,
    entry_point: { module, function: fn, job_type: 'interactive', launcher: `${L}.${launcher}` },
    triggers: ['http:'],
    execute: { concurrency: 1 },
    expose: { interface: iface, manual: true },
  };
}

/** dlt's own `default_dashboard_job()` (dlt/_workspace/deployment/manifest.py). */
const DASHBOARD_JOB: Json = {
  job_ref: 'jobs.workspace.dashboard',
  entry_point: {
    module: 'dlt._workspace.helpers.dashboard.dlt_dashboard',
    function: null,
    job_type: 'interactive',
    launcher: `${L}.dashboard`,
  },
  expose: { interface: 'gui', category: 'dashboard', manual: true },
  triggers: ['http:'],
  execute: { concurrency: 1 },
  require: { dependency_groups: ['jobs.workspace.dashboard'] },
  description: 'Workspace dashboard',
};

const REFS = {
  notebook: 'jobs.nb',
  dashboard: 'jobs.workspace.dashboard',
  mcp: 'jobs.tools',
  jobMcp: 'jobs.tools.served',
  api: 'jobs.tools.api',
};

interface ApiRun {
  id: string;
  runway_status: string;
  status_timeline?: { status: string; reason: string }[];
}

describe("interactive manifest jobs run through dlt's launchers (marimo, dashboard, mcp, job)", () => {
  let s: TestStack;
  const base = () => `/api/v1/workspaces/${s.workspaceId}`;
  const runs = new Map<string, string>();
  const jobs = new Map<string, string>();

  const trigger = async (ref: string): Promise<string> => {
    const t = await s.call('POST', `${base()}/scripts/trigger`, { job_refs: [ref] });
    assert.equal(t.status, 201, t.text);
    const [x] = (t.json as { triggered: Json[] }).triggered;
    assert.equal(x?.status, 'triggered', t.text);
    return String(x.run_id);
  };
  const runOf = async (runId: string): Promise<ApiRun> => {
    const r = await s.call('GET', `${base()}/runs/${runId}`);
    assert.equal(r.status, 200, r.text);
    return r.json as ApiRun;
  };
  const logsOf = async (runId: string) => (await s.call('GET', `${base()}/runs/${runId}/logs`)).text;
  const until = async <T>(what: string, f: () => Promise<T | undefined>, ms: number): Promise<T> => {
    for (const end = Date.now() + ms; ;) {
      const v = await f();
      if (v !== undefined) return v;
      if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
      await sleep(250);
    }
  };
  /** Waits until the run is running and its app answers through the gateway's /i/<job>/. */
  const served = async (key: keyof typeof REFS): Promise<string> => {
    const runId = runs.get(key)!;
    const jobId = jobs.get(key)!;
    await until(
      `${REFS[key]} to run`,
      async () => {
        const run = await runOf(runId);
        if (['failed', 'completed', 'cancelled'].includes(run.runway_status))
          assert.fail(`${REFS[key]} ended ${JSON.stringify(run)}\n${await logsOf(runId)}`);
        return run.runway_status === 'running' ? run : undefined;
      },
      150_000,
    );
    await until(
      `/i/${jobId}/ to answer`,
      async () => {
        const r = await s.call('GET', `/i/${jobId}/.runway/status`);
        assert.equal(r.status, 200, r.text);
        const st = r.json as { ready: boolean; failed: boolean; message: string | null };
        assert.ok(!st.failed, `the app failed: ${st.message}`);
        return st.ready ? st : undefined;
      },
      30_000,
    );
    return jobId;
  };
  const page = async (jobId: string) => {
    const r = await fetch(`${s.url}/i/${jobId}/`, {
      headers: { authorization: `Bearer ${s.adminToken}`, accept: 'text/html' },
    });
    return { status: r.status, text: await r.text() };
  };
  const mcpInitialize = async (jobId: string) => {
    const r = await fetch(`${s.url}/i/${jobId}/mcp`, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${s.adminToken}`,
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
      },
      body: JSON.stringify({
        jsonrpc: '2.0',
        id: 1,
        method: 'initialize',
        params: {
          protocolVersion: '2025-06-18',
          capabilities: {},
          clientInfo: { name: 'runway-test', version: '1' },
        },
      }),
    });
    return { status: r.status, text: await r.text() };
  };
  const startedWith = async (runId: string) =>
    (await runOf(runId)).status_timeline?.find((t) => t.status === 'running')?.reason ?? '';

  before(async () => {
    s = await startTestStack({
      RUNWAY_INTERACTIVE_IDLE: `${IDLE_SECONDS}s`,
      RUNWAY_INTERACTIVE_STARTUP_SECONDS: '120',
      RUNWAY_INTERACTIVE_PER_WORKSPACE: '5',
      RUNWAY_KILL_GRACE_SECONDS: '2',
    });
    await uploadPackage(s, 'deployments', [
      { path: 'nb.py', content: NOTEBOOK },
      { path: 'tools.py', content: TOOLS_PY },
    ]);
    const r = await s.call('PUT', `${base()}/deployment_manifest`, {
      job_definition_engine_version: 1,
      job_definition_hash: 'interactive-launchers-test',
      jobs: [
        interactive(REFS.notebook, 'nb', null, 'marimo', 'gui'),
        DASHBOARD_JOB,
        interactive(REFS.mcp, 'tools', null, 'mcp', 'mcp'),
        interactive(REFS.jobMcp, 'tools', 'served', 'job', 'mcp'),
        interactive(REFS.api, 'tools', 'api', 'job', 'rest_api'),
      ],
      deployment_module: '__deployment__',
    });
    assert.equal(r.status, 200, r.text);
    // All apps start at once (the machine is slow: they share the wait).
    for (const key of Object.keys(REFS) as (keyof typeof REFS)[]) {
      const job = await s.call('GET', `${base()}/scripts/${REFS[key]}`);
      assert.equal(job.status, 200, job.text);
      jobs.set(key, String((job.json as Json).id));
      runs.set(key, await trigger(REFS[key]));
    }
  });
  after(async () => {
    await s?.stop();
  });

  it("a marimo notebook job runs through dlt's marimo launcher and is served at /i/<job>/", async () => {
    const jobId = await served('notebook');
    const runId = runs.get('notebook')!;
    assert.match(
      await startedWith(runId),
      new RegExp(
        `-m ${L.replaceAll('.', '\\.')}\\.marimo --run-id ${runId} --trigger manual:jobs\\.nb --entry-point`,
      ),
    );
    const p = await page(jobId);
    assert.equal(p.status, 200, p.text.slice(0, 500));
    assert.match(p.text, /<marimo-filename[^>]*>[^<]*nb\.py</, 'marimo serves the deployed notebook');
    assert.match(p.text, /"mode":\s*"read"|marimo-mode[^>]*>read</, 'in app (run) mode');
    const logs = await logsOf(runId);
    assert.match(logs, new RegExp(`launcher ${L.replaceAll('.', '\\.')}\\.marimo for jobs\\.nb`), logs);
  });

  it("jobs.workspace.dashboard runs dlt's dashboard launcher and its page and assets load through /i/<job>/", async () => {
    const jobId = await served('dashboard');
    const runId = runs.get('dashboard')!;
    assert.match(await startedWith(runId), /-m dlt\._workspace\.deployment\.launchers\.dashboard --run-id/);
    const p = await page(jobId);
    assert.equal(p.status, 200, `${p.text.slice(0, 500)}\n${await logsOf(runId)}`);
    assert.match(p.text, /dlt workspace dashboard/, "dlt's own dashboard app");
    assert.match(p.text, /dlt_dashboard\.py/);
    // Its scripts are served under the base path the launcher never passed (Runway's `marimo` adds it).
    const src = /<script[^>]+src="([^"]+\.js)"/.exec(p.text)?.[1];
    assert.ok(src, 'the page loads a script');
    const asset = await fetch(new URL(src, `${s.url}/i/${jobId}/`), {
      headers: { authorization: `Bearer ${s.adminToken}` },
    });
    assert.equal(asset.status, 200, `${src}: ${asset.status}`);
    assert.match(asset.headers.get('content-type') ?? '', /javascript/);
    await asset.arrayBuffer();
  });

  it('an mcp job (mcp launcher, and a job returning a FastMCP) answers an MCP initialize through /i/<job>/mcp', async () => {
    for (const [key, name] of [
      ['mcp', 'runway-launcher-tools'],
      ['jobMcp', 'runway-job-mcp'],
    ] as const) {
      const jobId = await served(key);
      const r = await mcpInitialize(jobId);
      assert.equal(r.status, 200, r.text);
      assert.match(r.text, /"protocolVersion"/, r.text);
      assert.match(r.text, new RegExp(`"serverInfo":\\s*\\{"name":\\s*"${name}"`), r.text);
    }
    assert.match(
      await startedWith(runs.get('mcp')!),
      /-m dlt\._workspace\.deployment\.launchers\.mcp --run-id/,
    );
    assert.match(
      await startedWith(runs.get('jobMcp')!),
      /-m dlt\._workspace\.deployment\.launchers\.job --run-id/,
    );
  });

  it('a rest_api job whose function serves nothing fails at once, naming the interface', async () => {
    const runId = runs.get('api')!;
    const run = await until(
      'the api job to end',
      async () => {
        const r = await runOf(runId);
        return ['failed', 'completed', 'cancelled'].includes(r.runway_status) ? r : undefined;
      },
      120_000,
    );
    assert.equal(run.runway_status, 'failed', JSON.stringify(run));
    const reason = run.status_timeline?.find((t) => t.status === 'failed')?.reason ?? '';
    assert.match(reason, /exited \(code 0\) before it answered HTTP/, reason);
    assert.match(reason, /interface rest_api/, reason);
    assert.match(await logsOf(runId), /an api job that serves nothing/);
  });

  it('a cancelled app and the idle ones end with no process left', async (t) => {
    // How long each app took to answer after its spawn (the run's log says it).
    for (const key of ['notebook', 'dashboard', 'mcp', 'jobMcp'] as const) {
      const ms = /the app answers \((\d+) ms after the spawn\)/.exec(await logsOf(runs.get(key)!))?.[1];
      t.diagnostic(`${REFS[key]} answered ${ms ?? '?'} ms after its spawn`);
    }
    const cancel = await s.call('POST', `${base()}/runs/${runs.get('mcp')!}/cancel`);
    assert.ok(cancel.status < 300, cancel.text);
    for (const key of ['notebook', 'dashboard', 'mcp', 'jobMcp'] as const) {
      const runId = runs.get(key)!;
      const run = await until(
        `${REFS[key]} to end`,
        async () => {
          const r = await runOf(runId);
          return ['failed', 'completed', 'cancelled'].includes(r.runway_status) ? r : undefined;
        },
        60_000,
      );
      assert.equal(run.runway_status, key === 'mcp' ? 'cancelled' : 'completed', JSON.stringify(run));
      // Launcher, marimo (base URL /i/<job>) and uvicorn alike: nothing with the run id or the job's path.
      for (const token of [runId, `/i/${jobs.get(key)!}`])
        await until(
          `no process of ${REFS[key]}`,
          async () => (livePidsWithArg(token).length === 0 ? true : undefined),
          15_000,
        );
    }
  });

  it("without the launcher module (dlt 1.20) an app starts by file, saying why; with no file to start, the run's setup fails", () => {
    const dir = mkdtempSync(join(tmpdir(), 'runway-launchers-'));
    try {
      const executor = new ProcessExecutor();
      const launch = (extra: Partial<AppLaunch> = {}): AppLaunch => ({
        type: 'marimo',
        argv: ['by-file'],
        env: {},
        writable: [],
        target: { host: '127.0.0.1', port: 1 },
        basePath: '/i/x',
        network: 'host',
        notes: [],
        port: 1,
        ...extra,
      });
      const req = (launcher: string): RunRequestedEvent => ({
        workspaceId: '00000000-0000-4000-8000-000000000000',
        jobId: '00000000-0000-4000-8000-000000000001',
        requestedAt: new Date(),
        data: {
          runId: '00000000-0000-4000-8000-000000000002',
          number: 1,
          trigger: 'api',
          profile: 'prod',
          jobVersion: 1,
          jobVersionId: '00000000-0000-4000-8000-000000000003',
          entryPoint: 'nb.py',
          kind: 'interactive',
          timeoutSeconds: null,
          deployment: null,
          configuration: null,
          requestedBy: 'test',
          interface: 'gui',
          launch: {
            jobRef: REFS.notebook,
            launcher,
            module: 'nb',
            function: null,
            timezone: 'UTC',
            externalSchedulers: false,
          },
        },
      });
      const common = { runDir: dir, profile: 'prod', runEnv: {}, executor };
      const old = applyAppLauncher({ ...common, launch: launch(), req: req(`${L}.marimo`), python: PY_120 });
      assert.ok('fallback' in old);
      assert.match(
        old.fallback,
        /has no launcher module dlt\._workspace\.deployment\.launchers\.marimo .*starting nb\.py by file/,
      );
      assert.throws(
        () =>
          applyAppLauncher({
            ...common,
            launch: launch({ byFileError: 'nb.py is not a file of the deployment' }),
            req: req(`${L}.marimo`),
            python: PY_120,
          }),
        /has no launcher module .*, and nb\.py is not a file of the deployment/,
      );
      const l = launch();
      const now = applyAppLauncher({ ...common, launch: l, req: req(`${L}.marimo`), python: PY_026 });
      assert.ok('notes' in now);
      assert.equal(l.argv[2], PY_026);
      assert.deepEqual(l.argv.slice(3, 5), ['-m', `${L}.marimo`]);
      const entry = JSON.parse(l.argv.at(-1)!) as { run_args: unknown; job_type: string };
      assert.deepEqual(entry.run_args, { port: 1, base_path: '/i/x' });
      assert.equal(entry.job_type, 'interactive');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
