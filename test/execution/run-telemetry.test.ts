import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { z } from 'zod';
import { loadMasterKey, runBeaconToken } from '#libs/secrets';
import { executionRegistry } from '../../services/execution/src/run/run.events.js';
import { loadRunwayPackage } from '../../services/gateway/src/grpc/grpc-server.js';
import { launchChromium } from '../support/browser.js';
import { startTestStack, type TestStack } from '../support/stack.js';
import { uploadPackage, type Json } from '../jobs/support.js';

// The worker runs dlt 1.26.0 (.venv-026): dlt itself PUTs its traces and states to the run's beacon.
process.env.RUNWAY_PYTHON = join(process.cwd(), '.venv-026', 'bin', 'python');

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const SECRET = 'beacon-secret-7d41e0b2';
const JOB_LAUNCHER = 'dlt._workspace.deployment.launchers.job';

/**
 * `load`: a real pipeline into duckdb (5 rows), then one whose resource fails with the secret in its
 * message (caught: the run completes). `probe`: sends its own beacon what dlt would not (a body that
 * is no JSON, one of the wrong shape, one over the cap, its token on another run's id, then five
 * valid traces, timed), prints the answers and waits (the test forges requests meanwhile, then cancels it).
 */
const TELE_PY = `import json, os, time, uuid, urllib.request, urllib.error
import dlt
from dlt.hub import run


@dlt.resource(name="items")
def items():
    yield [{"id": i, "name": f"n{i}"} for i in range(5)]


@dlt.resource(name="broken")
def broken():
    yield {"id": 1}
    raise ValueError("the api refused key " + dlt.secrets.get("sources.demo.api_key"))


@run.job
def load():
    p = dlt.pipeline(pipeline_name="tele", destination="duckdb", dataset_name="tele_data")
    p.run(items())
    try:
        p.run(broken())
    except Exception as e:
        print("second load failed as meant:", type(e).__name__)
    return {"rows": 5}


def put(url, body):
    req = urllib.request.Request(url, data=body, method="PUT")
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return str(r.status)
    except urllib.error.HTTPError as e:
        return str(e.code)
    except Exception as e:
        return "error " + type(e).__name__


@run.job
def probe():
    dsn = os.environ["RUNTIME__DLTHUB_DSN"]
    print("dsn", dsn, flush=True)
    print("not-json", put(dsn + "/trace", b"not json"), flush=True)
    print("wrong-shape", put(dsn + "/trace", json.dumps({"foo": 1}).encode()), flush=True)
    print("oversized", put(dsn + "/state", b"[" + b"0," * (3 * 1024 * 1024) + b"0]"), flush=True)
    head, run_id, token = dsn.rsplit("/", 2)
    print("own-token-other-run", put(f"{head}/{uuid.uuid4()}/{token}/trace", b"{}"), flush=True)
    valid = {"transaction_id": "probe", "pipeline_name": "probe", "steps": []}
    for i in range(5):
        t0 = time.monotonic()
        status = put(dsn + "/trace", json.dumps(valid).encode())
        print("valid", status, round((time.monotonic() - t0) * 1000), "ms", flush=True)
    print("probe ready", flush=True)
    time.sleep(120)
`;

const stepSchema = z.object({
  step: z.string(),
  started_at: z.string().nullable(),
  finished_at: z.string().nullable(),
  duration_ms: z.number().nullable(),
  failed: z.boolean(),
});
const traceSchema = z.object({
  transaction_id: z.string(),
  pipeline_name: z.string(),
  started_at: z.string().nullable(),
  finished_at: z.string().nullable(),
  duration_ms: z.number().nullable(),
  dlt_version: z.string().nullable(),
  destination: z.string().nullable(),
  dataset_name: z.string().nullable(),
  failed: z.boolean(),
  steps: z.array(stepSchema),
  load_ids: z.array(z.string()),
  row_counts: z.record(z.string(), z.number()),
  exceptions: z.array(z.object({ step: z.string(), type: z.string().nullable(), message: z.string() })),
  truncated: z.boolean(),
});
const runSchema = z.object({
  id: z.string(),
  runway_status: z.string(),
  time_ended: z.string().nullable(),
  status_timeline: z.array(z.object({ status: z.string(), at: z.string() })).optional(),
  traces: z.array(traceSchema),
  pipeline_states: z.array(
    z.object({
      pipeline_name: z.string(),
      destination: z.string().nullable(),
      dataset_name: z.string().nullable(),
      schemas: z.array(
        z.object({ name: z.string(), version: z.number().nullable(), tables: z.array(z.string()) }),
      ),
    }),
  ),
});

function definition(name: string): Json {
  return {
    job_ref: `jobs.tele.${name}`,
    entry_point: { module: 'tele', function: name, job_type: 'batch', launcher: JOB_LAUNCHER },
    triggers: [],
    execute: { concurrency: 1 },
    expose: { manual: true },
  };
}

describe("a run's beacon: dlt's traces and states stored and shown with the run", () => {
  let s: TestStack;
  const base = () => `/api/v1/workspaces/${s.workspaceId}`;

  before(async () => {
    s = await startTestStack();
    await uploadPackage(s, 'deployments', [{ path: 'tele.py', content: TELE_PY }]);
    await uploadPackage(s, 'configurations', [
      { path: 'prod.secrets.toml', content: `[sources.demo]\napi_key = "${SECRET}"\n` },
    ]);
    const r = await s.call('PUT', `${base()}/deployment_manifest`, {
      job_definition_engine_version: 1,
      job_definition_hash: 'telemetry-test',
      jobs: [definition('load'), definition('probe')],
      deployment_module: '__deployment__',
    });
    assert.equal(r.status, 200, r.text);
  });
  after(async () => {
    await s?.stop();
  });

  const trigger = async (ref: string): Promise<string> => {
    const t = await s.call('POST', `${base()}/scripts/trigger`, { job_refs: [ref] });
    assert.equal(t.status, 201, t.text);
    const [x] = (t.json as { triggered: Json[] }).triggered;
    assert.equal(x?.status, 'triggered', t.text);
    return String(x.run_id);
  };
  const runOf = async (runId: string) => {
    const r = await s.call('GET', `${base()}/runs/${runId}`);
    assert.equal(r.status, 200, r.text);
    return { run: runSchema.parse(r.json), text: r.text };
  };
  const ended = async (runId: string) => {
    const until = Date.now() + 45_000;
    for (;;) {
      const r = await runOf(runId);
      if (['completed', 'failed', 'cancelled'].includes(r.run.runway_status)) return r;
      if (Date.now() > until) throw new Error(`run ${runId} did not end: ${r.text}`);
      await sleep(200);
    }
  };
  const logsOf = async (runId: string) => (await s.call('GET', `${base()}/runs/${runId}/logs`)).text;
  const grpcTraces = async (runId: string) => {
    const Runway = loadRunwayPackage().runway.v1.Runway;
    const client = new Runway(`127.0.0.1:${s.runway.grpcPort}`, grpc.credentials.createInsecure());
    const def = Runway.service.GetRun;
    assert.ok(def);
    const md = new grpc.Metadata();
    md.set('authorization', `Bearer ${s.adminToken}`);
    try {
      const res = await new Promise<unknown>((resolve, reject) =>
        client.makeUnaryRequest(
          def.path,
          def.requestSerialize,
          def.responseDeserialize,
          { workspace_id: s.workspaceId, run_id: runId },
          md,
          (err: grpc.ServiceError | null, value: unknown) => (err ? reject(err) : resolve(value)),
        ),
      );
      return z
        .object({
          traces: z.array(
            z.object({
              pipeline_name: z.string(),
              failed: z.boolean(),
              row_counts: z.record(z.string(), z.number()),
              steps: z.array(z.object({ step: z.string() })),
              exceptions: z.array(z.object({ message: z.string() })),
            }),
          ),
        })
        .parse(res).traces;
    } finally {
      client.close();
    }
  };

  let loadRun = '';
  /** The token the worker derives for a run (the stack's master key: RUNWAY_MASTER_KEY, else its data dir's). */
  const tokenOf = (runId: string) =>
    runBeaconToken(loadMasterKey({ masterKey: process.env.RUNWAY_MASTER_KEY, dataDir: s.dataDir }), runId);

  it("stores dlt's traces and pipeline state of a real duckdb pipeline and shows them with the run, secrets masked", async () => {
    loadRun = await trigger('jobs.tele.load');
    const { run, text } = await ended(loadRun);
    assert.equal(run.runway_status, 'completed', text);
    assert.equal(run.traces.length, 2, text);
    const [ok, bad] = run.traces;
    assert.ok(ok && bad);
    assert.equal(ok.pipeline_name, 'tele');
    assert.equal(ok.failed, false);
    assert.equal(ok.dlt_version, '1.26.0');
    assert.equal(ok.destination, 'duckdb');
    assert.equal(ok.dataset_name, 'tele_data');
    assert.deepEqual(
      ok.steps.map((x) => x.step),
      ['extract', 'normalize', 'load'],
    );
    assert.ok(ok.steps.every((x) => x.duration_ms !== null && x.duration_ms >= 0));
    assert.deepEqual(ok.row_counts, { items: 5 });
    assert.equal(ok.load_ids.length, 1);
    assert.equal(bad.failed, true);
    assert.equal(bad.exceptions.length, 1, text);
    assert.equal(bad.exceptions[0]?.step, 'extract');
    assert.match(bad.exceptions[0]?.message ?? '', /the api refused key \*\*\*/);
    // The state after the load: the schema and its tables.
    assert.ok(run.pipeline_states.length >= 1, text);
    const state = run.pipeline_states[0]!;
    assert.equal(state.pipeline_name, 'tele');
    assert.ok(state.schemas[0]?.tables.includes('items'), text);
    // The run's end came after its traces were stored: what dlt measured vs what the run shows.
    const pipelineEnd = Date.parse(bad.finished_at ?? '');
    const runEnd = Date.parse(run.time_ended ?? '');
    assert.ok(runEnd >= pipelineEnd, `${bad.finished_at} ≤ ${run.time_ended}`);
    const completedAt = Date.parse(run.status_timeline?.find((t) => t.status === 'completed')?.at ?? '');
    console.log(
      `# pipeline end → process end: ${runEnd - pipelineEnd} ms, → run completed: ${completedAt - pipelineEnd} ms`,
    );

    assert.ok(!text.includes(SECRET), 'the secret is nowhere in the run');
    const token = tokenOf(loadRun);
    assert.ok(!text.includes(token), 'nor the beacon token');
    // The run's own events: the summaries, no secret, no token.
    const store = s.env.newStore(executionRegistry());
    const { events } = await store.read({ workspaceId: s.workspaceId, type: 'run', id: loadRun });
    assert.equal(events.filter((e) => e.type === 'RunTraceReported').length, 2);
    assert.ok(events.some((e) => e.type === 'RunStateReported'));
    const stream = JSON.stringify(events);
    assert.ok(!stream.includes(SECRET) && !stream.includes(token), 'nothing secret in the event log');
    const g = await grpcTraces(loadRun);
    assert.equal(g.length, 2);
    assert.deepEqual(g[0]?.row_counts, { items: 5 });
    assert.deepEqual(
      g[0]?.steps.map((x) => x.step),
      ['extract', 'normalize', 'load'],
    );
    assert.match(g[1]?.exceptions[0]?.message ?? '', /\*\*\*/);
    assert.ok(!JSON.stringify(g).includes(SECRET));
    const logs = await logsOf(loadRun);
    assert.match(logs, /second load failed as meant/);
    assert.ok(!logs.includes(SECRET) && !logs.includes(token), 'nor in its log');
    assert.doesNotMatch(logs, /beacon: /, 'dlt sent nothing the beacon refused');
  });

  it("shows the traces on the dashboard's run page", async () => {
    const password = 'correct horse battery';
    const set = await s.call('POST', '/api/v1/admin/users/admin@runway.local/password', { password });
    assert.ok(set.status < 300, set.text);
    const browser = await launchChromium();
    try {
      const page = await browser.newPage();
      await page.goto(`${s.url}/w/${s.workspaceId}/runs/${loadRun}`);
      await page.getByLabel('Email').fill('admin@runway.local');
      await page.getByLabel('Password').fill(password);
      await page.getByRole('button', { name: 'Sign in' }).click();
      const section = page.getByTestId('run-traces');
      await section.waitFor({ timeout: 30_000 });
      const text = await section.innerText();
      assert.match(text, /Trace/);
      assert.match(text, /tele/);
      assert.match(text, /items 5/);
      assert.match(text, /normalize/);
      assert.match(text, /the api refused key \*\*\*/);
      assert.ok(!(await page.content()).includes(SECRET));
    } finally {
      await browser.close();
    }
  });

  it('answers result-trace and result for a job that returned something', async () => {
    const ws = s.workspaceId;
    const rt = await s.call('GET', `/telemetry/v1/workspaces/${ws}/job-runs/${loadRun}/result-trace`);
    assert.equal(rt.status, 200, rt.text);
    assert.deepEqual(rt.json, { job_ref: 'jobs.tele.load', type: 'dict' });
    const r = await s.call('GET', `/telemetry/v1/workspaces/${ws}/job-runs/${loadRun}/result`);
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(
      z
        .object({ job_run_id: z.string(), job_ref: z.string(), result_type: z.string(), result: z.unknown() })
        .parse(r.json),
      { job_run_id: loadRun, job_ref: 'jobs.tele.load', result_type: 'dict', result: { rows: 5 } },
    );
  });

  it('refuses what is not its run: wrong tokens, another run, bad and oversized bodies (4xx and a warning line); no result is a 404', async () => {
    const probeRun = await trigger('jobs.tele.probe');
    const until = Date.now() + 45_000;
    let logs = '';
    while (!/probe ready/.test(logs)) {
      if (Date.now() > until) throw new Error(`the probe did not get ready: ${logs}`);
      await sleep(250);
      logs = await logsOf(probeRun);
    }
    // The run's own DSN is in its log with the token masked.
    const dsn = /dsn (http:\/\/127\.0\.0\.1:(\d+)\/beacon\/v1\/runs\/([0-9a-f-]{36})\/)([^\s\\"]*)/.exec(
      logs,
    );
    assert.ok(dsn, logs);
    assert.equal(dsn[3], probeRun);
    assert.equal(dsn[4], '***', 'the token is masked in the log');
    assert.match(logs, /not-json 400/);
    assert.match(logs, /wrong-shape 422/);
    assert.match(logs, /oversized 413/);
    assert.match(logs, /own-token-other-run 403/);
    const stored = [...logs.matchAll(/valid 200 (\d+) ms/g)].map((m) => Number(m[1]));
    assert.equal(stored.length, 5, logs);
    console.log(`# a valid PUT answered once stored: ${stored.join(', ')} ms`);
    assert.match(logs, /beacon: PUT \/trace refused \(400\): the body is not JSON/);
    assert.match(logs, /beacon: PUT \/trace refused \(422\): not a dlt trace/);
    assert.match(logs, /beacon: PUT \/state refused \(413\): the body is over 4194304 bytes/);
    const port = dsn[2];
    const forge = async (runId: string, token: string) => {
      const res = await fetch(`http://127.0.0.1:${port}/beacon/v1/runs/${runId}/${token}/trace`, {
        method: 'PUT',
        body: JSON.stringify({ transaction_id: 'x', pipeline_name: 'forged', steps: [] }),
      });
      return res.status;
    };
    assert.equal(await forge(probeRun, tokenOf(probeRun)), 200, 'the token derived from the master key');
    assert.equal(await forge(probeRun, tokenOf(loadRun)), 403, "another run's token");
    assert.equal(await forge(probeRun, '0'.repeat(64)), 403, 'a wrong token');
    assert.equal(await forge(probeRun, 'short'), 403, 'a token of another length');
    assert.equal(await forge(loadRun, '0'.repeat(64)), 403, 'another run (ended) with a made-up token');
    const bad = await fetch(`http://127.0.0.1:${port}/beacon/v1/elsewhere`, { method: 'PUT', body: '{}' });
    assert.equal(bad.status, 404);
    const cancel = await s.call('POST', `${base()}/runs/${probeRun}/cancel`);
    assert.ok(cancel.status < 300, cancel.text);
    const { run, text } = await ended(probeRun);
    assert.equal(run.runway_status, 'cancelled', text);
    // Its own five valid traces and the one sent with its real token; nothing forged.
    assert.deepEqual(
      run.traces.map((t) => t.pipeline_name),
      ['probe', 'probe', 'probe', 'probe', 'probe', 'forged'],
    );
    assert.match(await logsOf(probeRun), /beacon: a request with a wrong token was refused \(403\)/);
    // The probe returned nothing: the dlthub client's "declared no job result".
    const none = await s.call(
      'GET',
      `/telemetry/v1/workspaces/${s.workspaceId}/job-runs/${probeRun}/result-trace`,
    );
    assert.equal(none.status, 404, none.text);
    assert.match(none.text, /declared no job result/);
  });
});
