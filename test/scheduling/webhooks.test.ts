import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { loadRunwayPackage } from '../../services/gateway/src/grpc/grpc-server.js';
import { runRunwayCli } from '../support/cli.js';
import { startTestStack, type TestStack } from '../support/stack.js';
import { newUser, uploadPackage, type Json } from '../jobs/support.js';

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
    s = await startTestStack({ RUNWAY_WEBHOOK_RATE_PER_MINUTE: '6' });
    ws = s.workspaceId;
    await uploadPackage(s, 'deployments', [
      { path: 'ok.py', content: 'print("ok")\n' },
      {
        path: 'hook.py',
        content:
          'import os\nprint("payload", os.environ.get("RUNWAY_WEBHOOK_PAYLOAD"), os.environ["RUNWAY_TRIGGER"])\n',
      },
    ]);
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

  it('webhook: URL shown once, one run per request (idempotency key dedupes), body to the run, rotate / revoke → 404, 413, 429', async () => {
    const d = await deploy(
      [job('jobs.hooks.on_hook', 'hook', { triggers: ['webhook:'] }), job('jobs.hooks.plain', 'ok')],
      {
        deployment_module: 'hooks',
      },
    );
    assert.equal(d.status, 200, d.text);
    const hookUrl = `${base()}/scripts/jobs.hooks.on_hook/webhook`;
    // A job without a webhook: trigger gets no webhook.
    const none = await s.call('POST', `${base()}/scripts/jobs.hooks.plain/webhook`, { action: 'enable' });
    assert.equal(none.status, 409, none.text);
    assert.equal((await s.call('POST', hookUrl, { action: 'nope' })).status, 400);

    const en = await s.call('POST', hookUrl, { action: 'enable' });
    assert.equal(en.status, 201, en.text);
    const url = (en.json as { webhook_url: string }).webhook_url;
    assert.match(url, /\/hooks\/[A-Za-z0-9_-]{43}$/);
    const path = new URL(url).pathname;
    const token = path.split('/').pop()!;
    const again = await s.call('POST', hookUrl, { action: 'enable' });
    assert.equal(again.status, 409, 'enable twice: rotate to see a URL again');
    const script = await s.call('GET', `${base()}/scripts/jobs.hooks.on_hook`);
    assert.ok(!script.text.includes(token), 'the token is not shown again');

    // No credential but the token.
    const post = (p: string, body?: Json | string, headers: Record<string, string> = {}) =>
      fetch(`${s.url}${p}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...headers },
        ...(body === undefined ? {} : { body: typeof body === 'string' ? body : JSON.stringify(body) }),
      });
    const r1 = await post(path, { order: 42 }, { 'idempotency-key': 'k1' });
    assert.equal(r1.status, 201, await r1.clone().text());
    const run1 = (await r1.json()) as { run_id: string; number: number; job_ref: string };
    assert.equal(run1.job_ref, 'jobs.hooks.on_hook');
    const r1again = await post(path, { order: 42 }, { 'idempotency-key': 'k1' });
    assert.equal(r1again.status, 201);
    assert.equal(((await r1again.json()) as { run_id: string }).run_id, run1.run_id, 'same key, same run');
    const r2 = await post(path);
    assert.equal(r2.status, 201);
    const run2 = (await r2.json()) as { run_id: string; number: number };
    assert.notEqual(run2.run_id, run1.run_id);

    // Validated, size-capped body; unknown tokens 404 (malformed or well-formed).
    assert.equal((await post(path, '"a string"')).status, 400);
    assert.equal((await post(path, { big: 'x'.repeat(20_000) })).status, 413);
    assert.equal((await post('/hooks/not-a-token')).status, 404);
    assert.equal((await post(`/hooks/${'A'.repeat(43)}`)).status, 404);

    const jobId = ((await s.call('GET', `${base()}/scripts/jobs.hooks.on_hook`)).json as { id: string }).id;
    const list = await s.call('GET', `${base()}/runs?script_id=${jobId}&limit=50`);
    assert.equal(list.status, 200, list.text);
    const hookRuns = (
      list.json as { items: { id: string; runway_trigger: string; trigger_source: string | null }[] }
    ).items;
    assert.equal(hookRuns.length, 2, 'exactly one run per request, the repeated key deduped');
    for (const r of hookRuns) {
      assert.equal(r.runway_trigger, 'webhook');
      assert.equal(r.trigger_source, 'webhook:');
    }
    // The body reaches the run (RUNWAY_WEBHOOK_PAYLOAD).
    const until = Date.now() + 30_000;
    let text: string;
    for (;;) {
      const l = await s.call('GET', `${base()}/runs/${run1.run_id}/logs`);
      const j = l.json as { logs: string | null; run: { runway_status: string } };
      text = j.logs ?? '';
      if (['completed', 'failed'].includes(j.run.runway_status) && text.includes('payload')) break;
      if (Date.now() > until) break;
      await new Promise((r) => setTimeout(r, 250));
    }
    assert.match(text, /payload \{"order":42\} webhook/);

    // Rotate: the old token is 404, the new one works; revoke: 404.
    const rot = await s.call('POST', hookUrl, { action: 'rotate' });
    assert.equal(rot.status, 201, rot.text);
    const path2 = new URL((rot.json as { webhook_url: string }).webhook_url).pathname;
    assert.notEqual(path2, path);
    assert.equal((await post(path)).status, 404, 'rotated: the old token is gone');
    assert.equal((await post(path2)).status, 201);
    const rev = await s.call('POST', hookUrl, { action: 'revoke' });
    assert.equal(rev.status, 201, rev.text);
    assert.equal((rev.json as { enabled: boolean; webhook_url: string | null }).webhook_url, null);
    assert.equal((await post(path2)).status, 404, 'revoked');

    // gRPC ChangeWebhook: the same application service (a viewer may not).
    const Runway = loadRunwayPackage().runway.v1.Runway;
    const client = new Runway(`127.0.0.1:${s.runway.grpcPort}`, grpc.credentials.createInsecure());
    const method = Runway.service.ChangeWebhook!;
    const grpcCall = (req: object, token: string) =>
      new Promise<{
        err: grpc.ServiceError | null;
        res: { enabled?: boolean; webhook_url?: string } | undefined;
      }>((resolve) => {
        const md = new grpc.Metadata();
        md.set('authorization', `Bearer ${token}`);
        client.makeUnaryRequest(
          method.path,
          method.requestSerialize,
          method.responseDeserialize,
          req,
          md,
          (err: grpc.ServiceError | null, res?: { enabled?: boolean; webhook_url?: string }) =>
            resolve({ err, res }),
        );
      });
    const viewer = await newUser(s, 'hook-viewer@example.com', 'viewer');
    const req = { workspace_id: ws, id_or_name: 'jobs.hooks.on_hook', action: 'enable' };
    assert.equal((await grpcCall(req, viewer.token)).err?.code, grpc.status.PERMISSION_DENIED);
    const g = await grpcCall(req, s.adminToken);
    assert.equal(g.err, null, String(g.err));
    assert.equal(g.res?.enabled, true);
    const gPath = new URL(String(g.res?.webhook_url)).pathname;
    assert.equal((await post(gPath)).status, 201, 'the URL from gRPC starts a run');
    const gRevoke = await grpcCall({ ...req, action: 'revoke' }, s.adminToken);
    assert.equal(gRevoke.res?.webhook_url, '');
    assert.equal((await post(gPath)).status, 404);
    client.close();

    // The CLI: `runway jobs webhook <job_ref> [--rotate|--revoke]`.
    const dir = mkdtempSync(join(tmpdir(), 'runway-hook-'));
    const cfg = mkdtempSync(join(tmpdir(), 'runway-hook-cfg-'));
    try {
      mkdirSync(join(dir, '.dlt'));
      writeFileSync(join(dir, '.dlt/.workspace'), '');
      const runway = (...args: string[]) => runRunwayCli(s, dir, cfg, ...args);
      const both = await runway('jobs', 'webhook', 'jobs.hooks.on_hook', '--rotate', '--revoke');
      assert.equal(both.code, 2, both.out + both.err);
      const cliOn = await runway('jobs', 'webhook', 'jobs.hooks.on_hook');
      assert.equal(cliOn.code, 0, cliOn.out + cliOn.err);
      const cliUrl = /http\S+\/hooks\/[A-Za-z0-9_-]{43}/.exec(cliOn.out)?.[0];
      assert.ok(cliUrl, cliOn.out);
      assert.equal((await post(new URL(cliUrl).pathname)).status, 201);
      const refused = await runway('jobs', 'webhook', 'jobs.hooks.plain');
      assert.equal(refused.code, 1, refused.out + refused.err);
      assert.match(refused.err, /cannot enable the webhook of jobs\.hooks\.plain: .*no webhook: trigger/);
      const cliOff = await runway('jobs', 'webhook', 'jobs.hooks.on_hook', '--revoke');
      assert.equal(cliOff.code, 0, cliOff.out + cliOff.err);
      assert.equal((await post(new URL(cliUrl).pathname)).status, 404);
    } finally {
      rmSync(dir, { recursive: true, force: true });
      rmSync(cfg, { recursive: true, force: true });
    }

    // Rate: 6 a minute per webhook (RUNWAY_WEBHOOK_RATE_PER_MINUTE); the 7th is 429.
    const en2 = await s.call('POST', hookUrl, { action: 'enable' });
    const path3 = new URL((en2.json as { webhook_url: string }).webhook_url).pathname;
    const statuses: number[] = [];
    for (let i = 0; i < 7; i++)
      statuses.push((await post(path3, undefined, { 'idempotency-key': 'same' })).status);
    assert.deepEqual(statuses, [201, 201, 201, 201, 201, 201, 429]);
  });
});
