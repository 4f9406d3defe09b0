import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { buildPackage } from '#libs/archive';
import { startTestStack, type TestStack } from '../support/stack.js';
import { createBatchJob, uploadPackage, waitForStatus, type Json } from '../jobs/support.js';

const L = 'dlt._workspace.deployment.launchers';

/**
 * The requirements.json dlt 1.26.0 (.venv-026) exports for a workspace with this requirements.txt
 * (`export_workspace_requirements`, as `dlt runtime deploy` uploads it; uv kept off PATH, so the
 * file is parsed as written): main = the file, the dashboard's group, every launcher's requirements.
 */
function dltRequirementsJson(requirementsTxt: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'runway-reqjson-'));
  try {
    writeFileSync(join(dir, 'requirements.txt'), requirementsTxt);
    const r = spawnSync(
      join(process.cwd(), '.venv-026', 'bin', 'python'),
      [
        '-c',
        'import json, sys, pathlib\nfrom dlt._workspace.deployment.requirements import export_workspace_requirements\nprint(json.dumps(export_workspace_requirements(pathlib.Path(sys.argv[1]))))',
        dir,
      ],
      { encoding: 'utf8', env: { PATH: '/usr/bin:/bin', HOME: dir } },
    );
    assert.equal(r.status, 0, r.stderr);
    return r.stdout.trim();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** A plain HTTP app (by file) answering with where tomli_w comes from: only the declared environment has it. */
const TINY_APP = String.raw`import json, os, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
import tomli_w
class H(BaseHTTPRequestHandler):
    def log_message(self, *a): pass
    def do_GET(self):
        body = json.dumps({"tomli_w": tomli_w.__file__, "prefix": sys.prefix}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
print("serving with tomli_w from", tomli_w.__file__, flush=True)
ThreadingHTTPServer((os.environ["HOST"], int(os.environ["PORT"])), H).serve_forever()
`;

const NOTEBOOK = `import marimo

app = marimo.App()


@app.cell
def _():
    import marimo as mo
    mo.md("hello from a notebook with its own dependencies")
    return


if __name__ == "__main__":
    app.run()
`;

/** A tiny pure-Python package that the project's .venv does not have. */
const TINY = 'tomli-w==1.2.0';

/** A pyproject.toml + uv.lock pinning iso8601 2.1.0 (written by `uv lock`, as a workspace has it). */
const PYPROJECT = `[project]
name = "locked-ws"
version = "0.1.0"
requires-python = ">=3.9"
dependencies = ["iso8601==2.1.0"]
`;
const UV_LOCK = `version = 1
revision = 5
requires-python = ">=3.9"

[[package]]
name = "iso8601"
version = "2.1.0"
source = { registry = "https://pypi.org/simple" }
sdist = { url = "https://files.pythonhosted.org/packages/b9/f3/ef59cee614d5e0accf6fd0cbba025b93b272e626ca89fb70a3e9187c5d15/iso8601-2.1.0.tar.gz", hash = "sha256:6b1d3829ee8921c4301998c909f7829fa9ed3cbdac0d3b16af2d743aed1ba8df", size = 6522, upload-time = "2023-10-03T00:25:39.317Z" }
wheels = [
    { url = "https://files.pythonhosted.org/packages/6c/0c/f37b6a241f0759b7653ffa7213889d89ad49a2b76eb2ddf3b57b2738c347/iso8601-2.1.0-py3-none-any.whl", hash = "sha256:aac4145c4dcb66ad8b648a02830f5e2ff6c24af20f4f482689be402db2429242", size = 7545, upload-time = "2023-10-03T00:25:32.304Z" },
]

[[package]]
name = "locked-ws"
version = "0.1.0"
source = { virtual = "." }
dependencies = [
    { name = "iso8601" },
]

[package.metadata]
requires-dist = [{ name = "iso8601", specifier = "==2.1.0" }]
`;

const IMPORTS_TINY = `import sys, tomli_w
print("tomli_w from", tomli_w.__file__, flush=True)
print("prefix", sys.prefix, flush=True)
print(tomli_w.dumps({"ok": True}), flush=True)
`;

describe("a deployment's own dependencies, installed with uv in the run's setup phase", () => {
  let s: TestStack;
  const ws = () => s.workspaceId;

  const deploy = (files: { path: string; content: string }[]) => uploadPackage(s, 'deployments', files);
  const runOf = async (name: string): Promise<string> => {
    await createBatchJob(s, name);
    const r = await s.call('POST', `/api/v1/workspaces/${ws()}/runs`, {
      script_id_or_name_or_secret: name,
      profile: null,
    });
    assert.equal(r.status, 201, r.text);
    return (r.json as Json).id as string;
  };
  const logsOf = async (id: string) =>
    ((await s.call('GET', `/api/v1/workspaces/${ws()}/runs/${id}/logs`)).json as { logs: string | null })
      .logs ?? '';
  const setupLines = (run: Json) =>
    (run.status_timeline as Json[])
      .filter((t) => typeof t.reason === 'string' && t.reason.startsWith('setup:'))
      .map((t) => ({ status: t.status, reason: t.reason as string }));
  const envsDir = () => join(s.dataDir, 'deps', ws(), 'envs');
  const builtEnvs = () =>
    existsSync(envsDir())
      ? readdirSync(envsDir()).filter((n) => existsSync(join(envsDir(), n, '.runway-env.json')))
      : [];

  before(async () => {
    s = await startTestStack();
  });
  after(() => s.stop());

  it('installs a requirements.txt into a cached environment, then reuses it (cache hit, nothing installed)', async () => {
    await deploy([
      { path: 'requirements.txt', content: `# the workspace's own\n${TINY}\n` },
      { path: 'uses_tiny.py', content: IMPORTS_TINY },
    ]);
    const first = await runOf('uses_tiny.py');
    const done = await waitForStatus(s, first, ['completed', 'failed'], 60_000);
    const log = await logsOf(first);
    assert.equal(done.status, 'completed', `${JSON.stringify(done)}\n${log}`);
    assert.match(log, /\[setup\] dependencies declared in requirements\.txt/);
    assert.match(log, /\[setup\] uv pip install -r requirements\.txt/);
    assert.match(log, /\[setup\] network: the package index only/, 'downloads went through the index proxy');
    assert.match(log, /\+ tomli-w==1\.2\.0/, 'uv reports what it installed');
    assert.match(log, /\[setup\] installed environment [0-9a-f]{12}/);
    assert.match(log, /ok = true/);
    const [env] = builtEnvs();
    assert.ok(env, 'one environment is built');
    assert.ok(log.includes(`tomli_w from ${join(envsDir(), env)}/lib/`), log);
    const setup = setupLines(done);
    assert.equal(setup.length, 1, JSON.stringify(done.status_timeline));
    assert.equal(
      setup[0]!.status,
      'starting',
      'the setup phase is part of starting (the 0.20 CLI waits for it)',
    );
    assert.match(setup[0]!.reason, /requirements\.txt, environment [0-9a-f]{12}: installed in \d+ ms/);
    assert.deepEqual(
      (done.status_timeline as Json[]).map((t) => t.status),
      ['pending', 'starting', 'starting', 'running', 'finalizing', 'completed'],
    );

    // A new deployment with the same requirements and other code: the same environment, as is.
    await deploy([
      { path: 'requirements.txt', content: `# the workspace's own\n${TINY}\n` },
      { path: 'again.py', content: IMPORTS_TINY },
    ]);
    const second = await runOf('again.py');
    const done2 = await waitForStatus(s, second, ['completed', 'failed'], 60_000);
    const log2 = await logsOf(second);
    assert.equal(done2.status, 'completed', `${JSON.stringify(done2)}\n${log2}`);
    assert.match(log2, /\[setup\] cache hit: environment [0-9a-f]{12} reused, nothing installed/);
    assert.doesNotMatch(log2, /uv pip install|uv venv/, 'no install on a cache hit');
    assert.match(setupLines(done2)[0]!.reason, /: cache hit in \d+ ms/);
    assert.deepEqual(builtEnvs(), [env]);
  });

  it('builds an environment once when the first runs of the same requirements start together', async () => {
    const before = builtEnvs();
    const script =
      'import text_unidecode\nprint("unidecoded", text_unidecode.unidecode("caf\\u00e9"), flush=True)\n';
    await deploy([
      { path: 'requirements.txt', content: 'text-unidecode==1.3\n' },
      { path: 'together_a.py', content: script },
      { path: 'together_b.py', content: script },
    ]);
    await createBatchJob(s, 'together_a.py');
    await createBatchJob(s, 'together_b.py');
    const ids = await Promise.all(
      ['together_a.py', 'together_b.py'].map(async (name) => {
        const r = await s.call('POST', `/api/v1/workspaces/${ws()}/runs`, {
          script_id_or_name_or_secret: name,
          profile: null,
        });
        assert.equal(r.status, 201, r.text);
        return (r.json as Json).id as string;
      }),
    );
    const done = await Promise.all(ids.map((id) => waitForStatus(s, id, ['completed', 'failed'], 60_000)));
    const logs = await Promise.all(ids.map((id) => logsOf(id)));
    for (const [i, d] of done.entries()) assert.equal(d.status, 'completed', logs[i]);
    for (const log of logs) assert.match(log, /unidecoded cafe/);
    assert.equal(logs.filter((l) => /uv pip install/.test(l)).length, 1, logs.join('\n----\n'));
    assert.equal(builtEnvs().length, before.length + 1);
  });

  it('installs the locked set of a pyproject.toml + uv.lock workspace', async () => {
    await deploy([
      { path: 'pyproject.toml', content: PYPROJECT },
      { path: 'uv.lock', content: UV_LOCK },
      {
        path: 'locked.py',
        content:
          'import iso8601\nprint("parsed", iso8601.parse_date("2026-01-02T03:04:05Z").year, flush=True)\n',
      },
    ]);
    const id = await runOf('locked.py');
    const done = await waitForStatus(s, id, ['completed', 'failed'], 60_000);
    const log = await logsOf(id);
    assert.equal(done.status, 'completed', `${JSON.stringify(done)}\n${log}`);
    assert.match(log, /\[setup\] dependencies declared in uv\.lock/);
    assert.match(log, /\[setup\] uv export --frozen/);
    assert.match(log, /\+ iso8601==2\.1\.0/);
    assert.match(log, /parsed 2026/);
  });

  it("fails the run with uv's own error when a requirement cannot be resolved, and caches nothing", async () => {
    const before = builtEnvs();
    await deploy([
      { path: 'requirements.txt', content: 'runway-no-such-package-7c1e9a==1.0.0\n' },
      { path: 'unresolvable.py', content: 'print("never runs")\n' },
    ]);
    const id = await runOf('unresolvable.py');
    const done = await waitForStatus(s, id, ['completed', 'failed'], 60_000);
    const log = await logsOf(id);
    assert.equal(done.status, 'failed', log);
    assert.equal(done.failure_reason, 'setup_error', JSON.stringify(done));
    assert.match(log, /runway-no-such-package-7c1e9a/);
    assert.match(log, /No solution found when resolving dependencies|not found in the package registry/);
    assert.match(String(done.message), /requirements\.txt failed: uv failed/);
    assert.doesNotMatch(log, /never runs/);
    assert.match(setupLines(done)[0]!.reason, /install failed/);
    assert.deepEqual(builtEnvs(), before, 'a failed build is not kept');
  });

  it("installs in the run's sandbox: Runway's data dir (keys, tokens) does not exist for the install step", async () => {
    const masterKey = readFileSync(join(s.dataDir, 'master.key'), 'utf8').trim();
    assert.ok(masterKey.length > 0);
    await deploy([
      { path: 'requirements.txt', content: `-r ${join(s.dataDir, 'master.key')}\n` },
      { path: 'steal.py', content: 'print("never runs")\n' },
    ]);
    const id = await runOf('steal.py');
    const done = await waitForStatus(s, id, ['completed', 'failed'], 60_000);
    const log = await logsOf(id);
    assert.equal(done.status, 'failed', log);
    assert.match(log, /master\.key/);
    assert.match(log, /No such file or directory|not found/i, log);
    assert.ok(!log.includes(masterKey), 'the key is never read');
  });

  it("reaches the package index only: not Runway's NATS (on the host's loopback) nor any other host", async () => {
    const nats = new URL(s.env.natsUrl.replace(/^nats:/, 'http:'));
    await deploy([
      {
        path: 'requirements.txt',
        content: `probe @ http://127.0.0.1:${nats.port}/probe-1.0-py3-none-any.whl\n`,
      },
      { path: 'reach_nats.py', content: 'print("never runs")\n' },
    ]);
    const id = await runOf('reach_nats.py');
    const done = await waitForStatus(s, id, ['completed', 'failed'], 60_000);
    const log = await logsOf(id);
    assert.equal(done.status, 'failed', log);
    assert.match(log, /\[setup\] network: the package index only \(pypi\.org, files\.pythonhosted\.org\)/);
    assert.ok(
      log.includes(`[setup] refused a connection to 127.0.0.1:${nats.port}: not the package index`),
      log,
    );
    assert.doesNotMatch(log, /INFO \{/, 'no byte of the NATS server reached the install step');
  });

  // A dlt 1.26 deployment: the files, plus the requirements.json the client uploads beside them.
  const deployWithRequirements = async (files: { path: string; content: string }[], requirements: string) => {
    const form = new FormData();
    form.append('files', new Blob([new Uint8Array(buildPackage(files))]), 'workspace.tar.gz');
    form.append('requirements', new Blob([requirements], { type: 'application/json' }), 'requirements.json');
    const r = await fetch(`${s.url}/api/v1/workspaces/${ws()}/deployments`, {
      method: 'POST',
      headers: { authorization: `Bearer ${s.adminToken}` },
      body: form,
    });
    assert.equal(r.status, 201, await r.text());
  };
  /**
   * Polls `f` until it returns a value. A connection reset while polling is "not yet" (a loaded
   * machine: a kept-alive connection closed by the gateway as the next poll used it); the last one
   * is named if the deadline passes.
   */
  const until = async <T>(what: string, f: () => Promise<T | undefined>, ms: number): Promise<T> => {
    let lastReset = '';
    for (const end = Date.now() + ms; ;) {
      let v: T | undefined;
      try {
        v = await f();
      } catch (err) {
        if (!(err instanceof TypeError && err.message === 'fetch failed')) throw err;
        lastReset = `${String(err.cause)}`;
      }
      if (v !== undefined) return v;
      if (Date.now() > end)
        throw new Error(`timed out waiting for ${what}${lastReset && ` (last: ${lastReset})`}`);
      await new Promise((r) => setTimeout(r, 250));
    }
  };
  /** Waits until the app of `jobId` answers through the gateway's /i/<job>/, then GETs its root. */
  const served = async (jobId: string, runId: string) => {
    await until(
      `the app of run ${runId}`,
      async () => {
        const run = (await s.call('GET', `/api/v1/workspaces/${ws()}/runs/${runId}`)).json as Json;
        if (['failed', 'completed', 'cancelled'].includes(String(run.status)))
          assert.fail(`ended ${JSON.stringify(run)}\n${await logsOf(runId)}`);
        if (run.status !== 'running') return undefined;
        // The gateway learns the app's address from the runs read model: not there yet = not ready.
        const r = await s.call('GET', `/i/${jobId}/.runway/status`);
        if (r.status !== 200) return undefined;
        const st = r.json as { ready: boolean; failed: boolean; message: string | null };
        assert.ok(!st.failed, `the app failed: ${st.message}\n${await logsOf(runId)}`);
        return st.ready ? true : undefined;
      },
      120_000,
    );
    const r = await fetch(`${s.url}/i/${jobId}/`, {
      headers: { authorization: `Bearer ${s.adminToken}`, accept: 'text/html' },
    });
    return { status: r.status, text: await r.text() };
  };
  const cancel = async (runId: string) => {
    const r = await s.call('POST', `/api/v1/workspaces/${ws()}/runs/${runId}/cancel`);
    assert.ok(r.status < 300, r.text);
    await waitForStatus(s, runId, ['cancelled', 'completed', 'failed'], 60_000);
  };

  it("a manifest marimo job gets requirements.json's default group plus its launcher's (marimo), and its entry_point.config", async () => {
    const requirements = dltRequirementsJson(`${TINY}\n`);
    const parsed = JSON.parse(requirements) as {
      groups: Record<string, string[]>;
      launcher_requirements: Record<string, string[]>;
    };
    assert.deepEqual(parsed.groups.main, [TINY], 'the default group has no marimo');
    assert.ok(parsed.launcher_requirements[`${L}.marimo`]?.includes('marimo'));
    await deployWithRequirements(
      [
        { path: 'requirements.txt', content: `${TINY}\n` },
        { path: 'nb.py', content: NOTEBOOK },
        { path: 'tiny_app.py', content: TINY_APP },
      ],
      requirements,
    );
    const m = await s.call('PUT', `/api/v1/workspaces/${ws()}/deployment_manifest`, {
      job_definition_engine_version: 1,
      job_definition_hash: 'launchdeps-test',
      jobs: [
        {
          job_ref: 'jobs.nb',
          entry_point: {
            module: 'nb',
            function: null,
            job_type: 'interactive',
            launcher: `${L}.marimo`,
            config: { greeting: 'hi' },
          },
          triggers: ['http:'],
          execute: { concurrency: 1 },
          expose: { interface: 'gui', manual: true },
        },
      ],
      deployment_module: '__deployment__',
    });
    assert.equal(m.status, 200, m.text);
    const job = await s.call('GET', `/api/v1/workspaces/${ws()}/scripts/jobs.nb`);
    assert.equal(job.status, 200, job.text);
    const jobId = String((job.json as Json).id);
    const t = await s.call('POST', `/api/v1/workspaces/${ws()}/scripts/trigger`, { job_refs: ['jobs.nb'] });
    assert.equal(t.status, 201, t.text);
    const runId = String((t.json as { triggered: Json[] }).triggered[0]?.run_id);
    const page = await served(jobId, runId);
    assert.equal(page.status, 200, page.text.slice(0, 500));
    assert.match(page.text, /<marimo-filename[^>]*>[^<]*nb\.py</, 'marimo serves the deployed notebook');
    const log = await logsOf(runId);
    assert.match(log, /\[setup\] dependencies declared in requirements\.json/);
    assert.match(log, /\+ marimo==/, "the launcher's group is installed");
    assert.match(log, /\+ tomli-w==1\.2\.0/, 'with the default group');
    assert.match(log, /\+ dlt==1\.26\.0/, "the launcher's requirements carry dlt");
    assert.match(log, new RegExp(`launcher ${L.replaceAll('.', '\\.')}\\.marimo for jobs\\.nb`), log);
    const run = (await s.call('GET', `/api/v1/workspaces/${ws()}/runs/${runId}`)).json as Json;
    const setup = setupLines(run);
    assert.equal(setup.length, 1, JSON.stringify(run.status_timeline));
    assert.match(setup[0]!.reason, /requirements\.json, environment [0-9a-f]{12}: installed in \d+ ms/);
    const started = (run.status_timeline as Json[]).find((x) => x.status === 'running')?.reason as string;
    assert.ok(started.includes(envsDir()), `the launcher runs with the environment's python: ${started}`);
    assert.ok(
      started.includes('"config":{"greeting":"hi"}'),
      `entry_point.config reaches the launcher: ${started}`,
    );
    await cancel(runId);
  });

  it("an interactive app started by file runs in the environment of the deployment's dependencies", async () => {
    const c = await s.call('POST', `/api/v1/workspaces/${ws()}/scripts`, {
      name: 'tiny_app.py',
      description: '',
      entry_point: 'tiny_app.py',
      script_type: 'interactive',
      active: true,
      profile: null,
      schedule: null,
    });
    assert.ok(c.status === 200 || c.status === 201, c.text);
    const jobId = String((c.json as Json).id);
    const r = await s.call('POST', `/api/v1/workspaces/${ws()}/runs`, {
      script_id_or_name_or_secret: 'tiny_app.py',
      profile: null,
    });
    assert.equal(r.status, 201, r.text);
    const runId = String((r.json as Json).id);
    const page = await served(jobId, runId);
    assert.equal(page.status, 200, page.text);
    const got = JSON.parse(page.text) as { tomli_w: string; prefix: string };
    assert.ok(got.prefix.startsWith(envsDir()), `the app's interpreter is the environment's: ${page.text}`);
    assert.ok(got.tomli_w.startsWith(got.prefix), page.text);
    const log = await logsOf(runId);
    assert.match(
      log,
      /\[setup\] dependencies declared in requirements\.txt/,
      'the files come first for a by-file app',
    );
    assert.match(log, /\+ tomli-w==1\.2\.0/);
    const run = (await s.call('GET', `/api/v1/workspaces/${ws()}/runs/${runId}`)).json as Json;
    assert.match(
      setupLines(run)[0]!.reason,
      /requirements\.txt, environment [0-9a-f]{12}: installed in \d+ ms/,
    );
    await cancel(runId);
  });
});
