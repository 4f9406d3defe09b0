import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startTestStack, type TestStack } from '../support/stack.js';
import { uploadPackage, type Json } from '../jobs/support.js';

/** A job definition as the dlthub client (manifest engine 2) sends it. */
function job(ref: string, module: string, extra: Json = {}): Json {
  return {
    engine_version: 2,
    job_ref: ref,
    entry_point: {
      module,
      function: null,
      job_type: 'batch',
      launcher: 'dlt._workspace.deployment.launchers.module',
    },
    triggers: [],
    execute: { concurrency: 1 },
    expose: { manual: true },
    ...extra,
  };
}

interface DeployedJob {
  job: {
    id: string;
    job_ref: string;
    version: number;
    job_definition_engine_version: number;
    is_archived?: boolean;
  };
  outcome: string;
  previous_version?: { version: number; job_id: string; job_ref: string };
}
interface Receipt {
  job_receipt: { succeeded: DeployedJob[]; failed: Json[]; skipped: DeployedJob[] };
  warnings: string[];
  deployment_module: string | null;
}

describe('engine 2 deploy (POST …/-deploy) and webhook triggers', () => {
  let s: TestStack;
  let ws: string;
  const base = () => `/api/v1/workspaces/${ws}`;
  const deploy = (jobs: Json[], extra: Json = {}) =>
    s.call('POST', `${base()}/-deploy`, {
      job_definition_engine_version: 2,
      job_definition_hash: `hash-${jobs.length}`,
      jobs,
      deployment_module: '__deployment__',
      description: 'engine 2 test workspace',
      ...extra,
    });
  const outcomes = (r: Receipt) =>
    [...r.job_receipt.succeeded, ...r.job_receipt.skipped].map((d) => `${d.job.job_ref}=${d.outcome}`).sort();

  before(async () => {
    s = await startTestStack();
    ws = s.workspaceId;
    await uploadPackage(s, 'deployments', [{ path: 'ok.py', content: 'print("ok")\n' }]);
  });
  after(async () => {
    await s.stop();
  });

  it('deploys two engine 2 jobs: created, then updated (with previous_version) and unchanged; a dry run stores nothing', async () => {
    const bad = await deploy([job('nojobs', 'ok')]);
    assert.equal(bad.status, 400, bad.text);
    assert.match(bad.text, /job_ref must be/);

    const first = await deploy([job('jobs.e2.a', 'ok'), job('jobs.e2.b', 'ok', { triggers: ['every:5m'] })]);
    assert.equal(first.status, 200, first.text);
    const r1 = first.json as Receipt;
    assert.deepEqual(outcomes(r1), ['jobs.e2.a=created', 'jobs.e2.b=created']);
    assert.deepEqual(r1.job_receipt.failed, []);
    assert.equal(r1.deployment_module, '__deployment__');
    const a1 = r1.job_receipt.succeeded.find((d) => d.job.job_ref === 'jobs.e2.a')!;
    assert.equal(a1.job.job_definition_engine_version, 2);
    assert.equal(a1.previous_version, undefined);

    // Dry run: a changed, b gone (archived), c new; nothing of it is stored.
    const dry = await deploy([job('jobs.e2.a', 'ok', { description: 'changed' }), job('jobs.e2.c', 'ok')], {
      dry_run: true,
    });
    assert.equal(dry.status, 200, dry.text);
    assert.deepEqual(outcomes(dry.json as Receipt), [
      'jobs.e2.a=updated',
      'jobs.e2.b=archived',
      'jobs.e2.c=created',
    ]);
    assert.equal((await s.call('GET', `${base()}/scripts/jobs.e2.c`)).status, 404, 'dry run created nothing');
    const aAfterDry = await s.call('GET', `${base()}/scripts/jobs.e2.a`);
    assert.equal((aAfterDry.json as { version: number }).version, a1.job.version, 'dry run changed nothing');
    const bAfterDry = await s.call('GET', `${base()}/scripts/jobs.e2.b`);
    assert.equal((bAfterDry.json as { archived: boolean }).archived, false, 'dry run archived nothing');

    const second = await deploy([
      job('jobs.e2.a', 'ok', { description: 'changed' }),
      job('jobs.e2.b', 'ok', { triggers: ['every:5m'] }),
    ]);
    assert.equal(second.status, 200, second.text);
    const r2 = second.json as Receipt;
    assert.deepEqual(outcomes(r2), ['jobs.e2.a=updated', 'jobs.e2.b=unchanged']);
    const a2 = r2.job_receipt.succeeded.find((d) => d.job.job_ref === 'jobs.e2.a')!;
    assert.equal(a2.job.version, a1.job.version + 1);
    assert.equal(a2.previous_version?.version, a1.job.version);
    assert.equal(a2.previous_version?.job_id, a1.job.id);
    assert.equal(r2.job_receipt.skipped[0]?.job.job_ref, 'jobs.e2.b');
  });
});
