import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { z } from 'zod';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { hasLauncher, launcherCommand } from '../../services/execution/src/worker/launcher.js';
import { loadRunwayPackage } from '../../services/gateway/src/grpc/grpc-server.js';
import { startTestStack, type TestStack } from '../support/stack.js';
import { uploadPackage, type Json } from '../jobs/support.js';

// The worker runs dlt 1.26.0 (.venv-026), whose launchers the manifest jobs name.
const root = process.cwd();
const PY_026 = join(root, '.venv-026', 'bin', 'python');
const PY_120 = join(root, '.venv', 'bin', 'python');
process.env.RUNWAY_PYTHON = PY_026;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const SECRET = 'launcher-secret-9f3a1c';
const JOB_LAUNCHER = 'dlt._workspace.deployment.launchers.job';
const REF = 'jobs.reports.summary';

/** A `@run.job` function returning what the launcher gave it, and a secret it read (masked in the result). */
const REPORTS_PY = `import os
import dlt
from dlt.hub import run


@run.job
def summary(run_context):
    print("summary ran")
    return {
        "run_id": run_context["run_id"],
        "trigger": run_context["trigger"],
        "refresh": run_context["refresh"],
        "interval_start": run_context["interval_start"].isoformat(),
        "interval_end": run_context["interval_end"].isoformat(),
        "env_run_id": os.environ.get("RUNTIME__RUN_ID"),
        "env_job_ref": os.environ.get("RUNTIME__JOB_REF"),
        "main": __import__("sys").modules["__main__"].__spec__.name,
        "secret": dlt.secrets.get("sources.demo.api_key"),
    }


@run.job
def nothing():
    print("nothing to return")


@run.job
def boom():
    raise RuntimeError("the job failed on purpose")
`;

interface ApiRun {
  id: string;
  runway_status: string;
  trigger_source: string | null;
  interval_start: string | null;
  result: {
    job_ref: string;
    type: string;
    value: Record<string, unknown> | null;
    text: string;
    truncated: boolean;
    bytes: number;
  } | null;
  status_timeline?: { status: string; reason: string }[];
}

function definition(name: string): Json {
  return {
    job_ref: `jobs.reports.${name}`,
    entry_point: { module: 'reports', function: name, job_type: 'batch', launcher: JOB_LAUNCHER },
    triggers: [],
    execute: { concurrency: 1 },
    expose: { manual: true },
  };
}

describe("the launcher contract: manifest jobs run through dlt's launcher, their result is shown with the run", () => {
  let s: TestStack;
  const base = () => `/api/v1/workspaces/${s.workspaceId}`;

  before(async () => {
    s = await startTestStack();
    await uploadPackage(s, 'deployments', [{ path: 'reports.py', content: REPORTS_PY }]);
    await uploadPackage(s, 'configurations', [
      { path: 'prod.secrets.toml', content: `[sources.demo]\napi_key = "${SECRET}"\n` },
    ]);
    const r = await s.call('PUT', `${base()}/deployment_manifest`, {
      job_definition_engine_version: 1,
      job_definition_hash: 'launcher-test',
      jobs: [definition('summary'), definition('nothing'), definition('boom')],
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
  const ended = async (runId: string): Promise<ApiRun> => {
    const until = Date.now() + 40_000;
    for (;;) {
      const r = await s.call('GET', `${base()}/runs/${runId}`);
      assert.equal(r.status, 200, r.text);
      const run = r.json as ApiRun;
      if (['completed', 'failed', 'cancelled'].includes(run.runway_status)) return run;
      if (Date.now() > until) throw new Error(`run ${runId} did not end: ${r.text}`);
      await sleep(200);
    }
  };
  /** gRPC GetRun's `result` (RunResult). */
  const grpcResult = async (runId: string) => {
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
      const shape = z.object({
        result: z
          .object({
            job_ref: z.string(),
            type: z.string(),
            value_json: z.string(),
            truncated: z.boolean(),
            bytes: z.number(),
          })
          .nullish(),
      });
      return shape.parse(res).result ?? null;
    } finally {
      client.close();
    }
  };
  const logsOf = async (runId: string) => (await s.call('GET', `${base()}/runs/${runId}/logs`)).text;

  it('runs the function through `python -m <launcher>` with the run id and trigger, and shows what it returned', async () => {
    const runId = await trigger(REF);
    const run = await ended(runId);
    assert.equal(run.runway_status, 'completed', JSON.stringify(run));
    assert.equal(run.trigger_source, `manual:${REF}`);
    const started = run.status_timeline?.find((t) => t.status === 'running')?.reason ?? '';
    assert.match(
      started,
      new RegExp(
        `-m ${JOB_LAUNCHER.replaceAll('.', '\\.')} --run-id ${runId} --trigger manual:${REF} --entry-point`,
      ),
    );
    assert.ok(run.result, JSON.stringify(run));
    assert.equal(run.result.job_ref, REF);
    assert.equal(run.result.type, 'dict');
    assert.equal(run.result.truncated, false);
    const v = run.result.value!;
    assert.equal(v.run_id, runId, 'the launcher gave the function the run id');
    assert.equal(v.trigger, `manual:${REF}`, 'and the trigger');
    assert.equal(v.env_run_id, runId);
    assert.equal(v.env_job_ref, REF);
    assert.equal(v.main, JOB_LAUNCHER, "dlt's job launcher was the main module");
    assert.equal(v.refresh, false);
    assert.equal(
      Date.parse(String(v.interval_start)),
      Date.parse(run.interval_start!),
      'the run interval went in',
    );
    assert.equal(v.secret, '***', 'a secret in the result is masked');
    assert.ok(!run.result.text.includes(SECRET));
    assert.ok(run.result.bytes >= run.result.text.length - 3, 'bytes: the size of the whole (unmasked) JSON');
    const g = await grpcResult(runId);
    assert.equal(g?.job_ref, REF);
    assert.equal(g?.type, 'dict');
    assert.equal(g?.value_json, run.result.text, 'gRPC GetRun shows the same result');
    const logs = await logsOf(runId);
    assert.match(logs, /summary ran/);
    assert.match(
      logs,
      new RegExp(`launcher ${JOB_LAUNCHER.replaceAll('.', '\\.')} for ${REF.replaceAll('.', '\\.')}`),
    );
    assert.ok(!logs.includes(SECRET), 'the secret is masked in the log too');
  });

  it('a function returning nothing has no result; a failing one fails the run without a result', async () => {
    const none = await ended(await trigger('jobs.reports.nothing'));
    assert.equal(none.runway_status, 'completed', JSON.stringify(none));
    assert.equal(none.result, null);
    assert.equal(await grpcResult(none.id), null);
    assert.match(await logsOf(none.id), /nothing to return/);
    const boom = await ended(await trigger('jobs.reports.boom'));
    assert.equal(boom.runway_status, 'failed', JSON.stringify(boom));
    assert.equal(boom.result, null);
    assert.match(await logsOf(boom.id), /the job failed on purpose/);
  });

  it("falls back to the module file when the run's interpreter has no launcher (dlt 1.20), saying why", () => {
    assert.equal(hasLauncher(PY_026, JOB_LAUNCHER), true);
    assert.equal(hasLauncher(PY_120, JOB_LAUNCHER), false);
    const req = {
      workspaceId: s.workspaceId,
      jobId: '00000000-0000-4000-8000-000000000001',
      requestedAt: new Date(),
      data: {
        runId: '00000000-0000-4000-8000-000000000002',
        number: 1,
        trigger: 'api' as const,
        profile: 'prod',
        jobVersion: 1,
        jobVersionId: '00000000-0000-4000-8000-000000000003',
        entryPoint: 'reports.py',
        kind: 'batch' as const,
        timeoutSeconds: null,
        deployment: null,
        configuration: null,
        requestedBy: 'test',
        launch: {
          jobRef: REF,
          launcher: JOB_LAUNCHER,
          module: 'reports',
          function: 'summary',
          timezone: 'UTC',
          externalSchedulers: false,
        },
      },
    };
    const old = launcherCommand(PY_120, req, 'prod');
    assert.ok('fallback' in old);
    assert.match(
      old.fallback,
      /has no launcher module dlt\._workspace\.deployment\.launchers\.job .*running reports\.py as a script/,
    );
    const cmd = launcherCommand(PY_026, req, 'prod');
    assert.ok('argv' in cmd);
    assert.deepEqual(cmd.argv.slice(0, 7), [
      PY_026,
      '-m',
      JOB_LAUNCHER,
      '--run-id',
      req.data.runId,
      '--trigger',
      `manual:${REF}`,
    ]);
  });
});
