import * as grpc from '@grpc/grpc-js';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { loadRunwayPackage } from '../../services/gateway/src/grpc/grpc-server.js';
import { runRunwayCli } from '../support/cli.js';
import { startTestStack, type TestStack } from '../support/stack.js';
import { createBatchJob, newUser, uploadPackage, waitForStatus, type Json } from '../jobs/support.js';
import {
  percentile,
  startHookReceiver,
  startSmtpSink,
  verifySignature,
  type HookReceiver,
  type SmtpSink,
} from './support.js';

const code = {
  'fail.py': 'import sys\nprint("boom", file=sys.stderr)\nsys.exit(3)\n',
  'ok.py': 'print("fine")\n',
  // Fails its first three runs, then succeeds (a counter in the job's data dir).
  'flip.py': [
    'import os, pathlib, sys',
    'data = pathlib.Path(os.environ["DLT_DATA_DIR"]); data.mkdir(parents=True, exist_ok=True)',
    'counter = data / "flips"; n = int(counter.read_text()) + 1 if counter.exists() else 1; counter.write_text(str(n))',
    'sys.exit(3 if n <= 3 else 0)',
    '',
  ].join('\n'),
  'limited.py': 'import sys\nsys.exit(4)\n',
};

const MAX_ATTEMPTS = 3;

describe('alerting: rules → run ends → signed webhooks and emails', () => {
  let s: TestStack;
  let smtp: SmtpSink;
  let hooks: HookReceiver;
  const base = () => `/api/v1/workspaces/${s.workspaceId}/alerts`;
  const createRule = (body: Json, token?: string) => s.call('POST', `${base()}/rules`, body, token);
  const runJob = async (name: string): Promise<string> => {
    const r = await s.call('POST', `/api/v1/workspaces/${s.workspaceId}/runs`, {
      script_id_or_name_or_secret: name,
      profile: null,
    });
    assert.equal(r.status, 201, r.text);
    return (r.json as Json).id as string;
  };

  before(async () => {
    smtp = await startSmtpSink();
    // /flaky answers 500 twice, then 204; /dead always 500; the rest 204.
    hooks = await startHookReceiver((path, n) =>
      path === '/dead' ? 500 : path === '/flaky' && n <= 2 ? 500 : 204,
    );
    s = await startTestStack({
      RUNWAY_SMTP_URL: smtp.url,
      RUNWAY_SMTP_FROM: 'alerts@runway.test',
      RUNWAY_ALERT_MAX_ATTEMPTS: String(MAX_ATTEMPTS),
      RUNWAY_ALERT_RETRY_MS: '100',
    });
    await uploadPackage(
      s,
      'deployments',
      Object.entries(code).map(([path, content]) => ({ path, content })),
    );
    for (const name of Object.keys(code)) await createBatchJob(s, name);
  });
  after(async () => {
    await s?.stop();
    await hooks?.stop();
    await smtp?.stop();
  });

  it('refuses bad rules with 400 and stores nothing; viewers read but do not write', async () => {
    const bad: Json[] = [
      { name: 'x', conditions: ['run_failed'], webhook_url: 'not a url' },
      { name: 'x', conditions: ['run_failed'], webhook_url: 'ftp://example.com/hook' },
      { name: 'x', conditions: ['exploded'], webhook_url: 'http://127.0.0.1:1/hook' },
      { name: 'x', conditions: [], webhook_url: 'http://127.0.0.1:1/hook' },
      { name: 'x', conditions: ['run_failed'] },
      { name: 'x', conditions: ['run_failed'], email_to: ['not-an-address'] },
      { name: 'x', conditions: ['run_failed'], webhook_url: 'http://127.0.0.1:1/h', surprise: 1 },
    ];
    for (const body of bad) {
      const r = await createRule(body);
      assert.equal(r.status, 400, `${JSON.stringify(body)} → ${r.status} ${r.text}`);
    }
    const unknownJob = await createRule({
      name: 'x',
      job: 'nope.py',
      conditions: ['run_failed'],
      webhook_url: 'http://127.0.0.1:1/h',
    });
    assert.equal(unknownJob.status, 404, unknownJob.text);
    const list = await s.call('GET', `${base()}/rules`);
    assert.equal(list.status, 200, list.text);
    assert.deepEqual((list.json as Json).items, []);

    const viewer = await newUser(s, 'alert-viewer@example.com', 'viewer');
    const denied = await createRule(
      { name: 'v', conditions: ['run_failed'], webhook_url: 'http://127.0.0.1:1/h' },
      viewer.token,
    );
    assert.equal(denied.status, 403, denied.text);
    assert.equal((await s.call('GET', `${base()}/rules`, undefined, viewer.token)).status, 200);
    assert.equal((await s.call('GET', `${base()}/deliveries`, undefined, viewer.token)).status, 200);
  });

  it('a failed run → one signed webhook and one email within 5 s of its end (over 8 runs)', async () => {
    const created = await createRule({
      name: 'fail alerts',
      job: 'fail.py',
      conditions: ['run_failed', 'failures_in_row'],
      failures_in_row: 1,
      webhook_url: `${hooks.url}/ok`,
      email_to: ['oncall@example.com'],
      rate_limit: { max: 1000, window_seconds: 600 },
    });
    assert.equal(created.status, 201, created.text);
    const rule = created.json as Json;
    const secret = rule.webhook_secret as string;
    assert.match(secret, /^whsec_/);
    // Shown once: never again.
    const again = await s.call('GET', `${base()}/rules/${rule.id as string}`);
    assert.equal(again.status, 200);
    assert.ok(!again.text.includes(secret), 'the secret is not in a later answer');
    assert.equal((again.json as Json).webhook_secret, undefined);

    const hookDelays: number[] = [];
    const mailDelays: number[] = [];
    const recordedDelays: number[] = [];
    for (let i = 0; i < 8; i++) {
      const runId = await runJob('fail.py');
      const hook = await hooks.waitFor((h) => h.path === '/ok' && h.json.run_id === runId, 30_000);
      const mail = await smtp.waitFor((m) => m.text.includes(runId), 30_000);
      const run = await waitForStatus(s, runId, ['failed']);
      const endedAt = Date.parse(hook.json.ended_at as string);
      assert.ok(Number.isFinite(endedAt), hook.body);
      hookDelays.push(hook.receivedAt - endedAt);
      mailDelays.push(mail.receivedAt - endedAt);
      // And after RunFailed was recorded (the run's `failed` status in its timeline).
      const failedAt = (run.status_timeline as Json[]).find((t) => t.status === 'failed')?.at;
      assert.equal(typeof failedAt, 'string', JSON.stringify(run.status_timeline));
      recordedDelays.push(hook.receivedAt - Date.parse(failedAt as string));

      assert.ok(verifySignature(secret, hook.signature, hook.body), `bad signature ${hook.signature}`);
      assert.ok(!verifySignature('whsec_wrong', hook.signature, hook.body));
      assert.equal(hook.alertId, hook.json.alert_id);
      assert.equal(hook.json.job_name, 'fail.py');
      assert.equal(hook.json.reason, 'exit_code');
      assert.equal(hook.json.outcome, 'failed');
      assert.equal(hook.json.run_number, run.number ?? hook.json.run_number);
      // Two conditions met, one alert per run and rule.
      assert.deepEqual(hook.json.conditions, i === 0 ? ['run_failed', 'failures_in_row'] : ['run_failed']);
      assert.equal(hooks.hooks.filter((h) => h.json.run_id === runId).length, 1);
      assert.deepEqual(mail.to, ['oncall@example.com']);
      assert.equal(mail.mailFrom, 'alerts@runway.test');
      assert.equal(mail.header('runway-alert-id'), hook.alertId);
      assert.match(mail.header('subject') ?? '', /run failed/);
    }
    const report = {
      webhook: {
        p50: percentile(hookDelays, 50),
        p99: percentile(hookDelays, 99),
        max: Math.max(...hookDelays),
      },
      email: {
        p50: percentile(mailDelays, 50),
        p99: percentile(mailDelays, 99),
        max: Math.max(...mailDelays),
      },
      webhookAfterRunFailedRecorded: {
        p50: percentile(recordedDelays, 50),
        p99: percentile(recordedDelays, 99),
        max: Math.max(...recordedDelays),
      },
    };
    console.log(`alert delay after the run's end (ms, 8 runs): ${JSON.stringify(report)}`);
    for (const d of [...hookDelays, ...mailDelays]) assert.ok(d < 5_000, `an alert took ${d} ms`);

    const deliveries = await s.call('GET', `${base()}/deliveries?rule_id=${rule.id as string}`);
    assert.equal(deliveries.status, 200, deliveries.text);
    const items = (deliveries.json as { items: Json[] }).items;
    assert.equal(items.length, 16); // 8 runs × (webhook + email)
    assert.ok(
      items.every((d) => d.status === 'delivered' && d.attempts === 1),
      deliveries.text,
    );
    assert.ok(!deliveries.text.includes(secret));
  });

  it('retries a webhook that answers 500 (same alert id) until it succeeds; dead-letters after the last try', async () => {
    const mk = async (name: string, path: string) => {
      const r = await createRule({ name, conditions: ['run_failed'], webhook_url: `${hooks.url}${path}` });
      assert.equal(r.status, 201, r.text);
      return (r.json as Json).id as string;
    };
    const flaky = await mk('flaky', '/flaky');
    const dead = await mk('dead', '/dead');
    const fire = async (ruleId: string) => {
      const r = await s.call('POST', `${base()}/rules/${ruleId}/test`);
      assert.equal(r.status, 202, r.text);
      return (r.json as Json).alert_id as string;
    };
    const flakyAlert = await fire(flaky);
    const deadAlert = await fire(dead);
    await hooks.waitFor((h) => h.path === '/flaky' && h.answered === 204, 20_000);
    const tries = hooks.hooks.filter((h) => h.path === '/flaky');
    assert.equal(tries.length, 3);
    assert.ok(
      tries.every((h) => h.alertId === flakyAlert && h.body === tries[0]!.body),
      JSON.stringify(tries.map((h) => [h.alertId, h.body])),
    );
    // Backoff: the second wait is longer than the first.
    const gaps = [tries[1]!.receivedAt - tries[0]!.receivedAt, tries[2]!.receivedAt - tries[1]!.receivedAt];
    assert.ok(gaps[1]! >= gaps[0]! - 20, `waits between tries: ${gaps.join(', ')} ms`);

    const deadLetter = async () => {
      for (const end = Date.now() + 20_000; Date.now() < end;) {
        const r = await s.call('GET', `${base()}/deliveries?status=dead`);
        const item = (r.json as { items: Json[] }).items.find((d) => d.alert_id === deadAlert);
        if (item) return item;
        await new Promise((res) => setTimeout(res, 100));
      }
      throw new Error('no dead letter');
    };
    const letter = await deadLetter();
    assert.equal(letter.attempts, MAX_ATTEMPTS);
    assert.match(letter.last_error as string, /500/);
    assert.equal(hooks.hooks.filter((h) => h.path === '/dead').length, MAX_ATTEMPTS);
    const delivered = await s.call('GET', `${base()}/deliveries?rule_id=${flaky}`);
    const d = (delivered.json as { items: Json[] }).items[0]!;
    assert.equal(d.status, 'delivered');
    assert.equal(d.attempts, 3);
    // No more tries after the dead letter.
    await new Promise((r) => setTimeout(r, 1_000));
    assert.equal(hooks.hooks.filter((h) => h.path === '/dead').length, MAX_ATTEMPTS);
    for (const id of [flaky, dead])
      assert.equal((await s.call('DELETE', `${base()}/rules/${id}`)).status, 200);
  });

  it('rate limits a rule (the rest held back and counted) and alerts N failures in a row and the recovery', async () => {
    const limited = await createRule({
      name: 'limited',
      job: 'limited.py',
      conditions: ['run_failed'],
      webhook_url: `${hooks.url}/limited`,
      rate_limit: { max: 2, window_seconds: 600 },
    });
    assert.equal(limited.status, 201, limited.text);
    const streak = await createRule({
      name: 'streak',
      job: 'flip.py',
      conditions: ['failures_in_row', 'recovered'],
      failures_in_row: 3,
      webhook_url: `${hooks.url}/streak`,
    });
    assert.equal(streak.status, 201, streak.text);

    const limitedRuns: string[] = [];
    for (let i = 0; i < 4; i++) {
      const id = await runJob('limited.py');
      limitedRuns.push(id);
      await waitForStatus(s, id, ['failed']);
    }
    const flips: string[] = [];
    for (let i = 0; i < 4; i++) {
      const id = await runJob('flip.py');
      flips.push(id);
      await waitForStatus(s, id, i < 3 ? ['failed'] : ['completed']);
    }
    const recovered = await hooks.waitFor((h) => h.path === '/streak' && h.json.run_id === flips[3]);
    assert.deepEqual(recovered.json.conditions, ['recovered']);
    const third = hooks.hooks.find((h) => h.path === '/streak' && h.json.run_id === flips[2]);
    assert.ok(third, 'the third failure in a row is alerted');
    assert.deepEqual(third.json.conditions, ['failures_in_row']);
    assert.equal(third.json.failures_in_row, 3);
    assert.equal(hooks.hooks.filter((h) => h.path === '/streak').length, 2, 'runs 1 and 2 alert nothing');

    // Give the last limited runs' reactions time: still two alerts.
    await new Promise((r) => setTimeout(r, 1_000));
    const limitedHooks = hooks.hooks.filter((h) => h.path === '/limited');
    assert.deepEqual(
      limitedHooks.map((h) => h.json.run_id),
      limitedRuns.slice(0, 2),
    );
  });

  it('deletes a rule: its job alerts no more', async () => {
    const list = await s.call('GET', `${base()}/rules`);
    const rule = (list.json as { items: Json[] }).items.find((r) => r.name === 'fail alerts')!;
    const del = await s.call('DELETE', `${base()}/rules/${rule.id as string}`);
    assert.equal(del.status, 200, del.text);
    assert.equal((await s.call('GET', `${base()}/rules/${rule.id as string}`)).status, 404);
    const runId = await runJob('fail.py');
    await waitForStatus(s, runId, ['failed']);
    await new Promise((r) => setTimeout(r, 1_500));
    assert.equal(
      hooks.hooks.filter((h) => h.json.run_id === runId).length,
      0,
      'no rule left watches fail.py',
    );
  });

  it('is managed over gRPC and the CLI too (the same service; viewers read only)', async () => {
    type Unary = (
      req: object,
      md: grpc.Metadata,
      cb: (err: grpc.ServiceError | null, res: Record<string, unknown>) => void,
    ) => void;
    const pkg = loadRunwayPackage();
    const client = new pkg.runway.v1.Runway(
      `127.0.0.1:${s.runway.grpcPort}`,
      grpc.credentials.createInsecure(),
    ) as grpc.Client & Record<string, Unary>;
    const call = (method: string, req: object, token: string = s.adminToken) =>
      new Promise<{ err: grpc.ServiceError | null; res: Record<string, unknown> }>((resolve) => {
        const md = new grpc.Metadata();
        md.set('authorization', `Bearer ${token}`);
        client[method]!(req, md, (err, res) => resolve({ err, res }));
      });
    const dir = mkdtempSync(join(tmpdir(), 'runway-alerts-cli-'));
    try {
      const ws = s.workspaceId;
      const created = await call('CreateAlertRule', {
        workspace_id: ws,
        name: 'grpc rule',
        job: 'ok.py',
        conditions: ['recovered'],
        email_to: ['grpc@example.com'],
      });
      assert.equal(created.err, null, created.err?.details);
      assert.equal(created.res.job_name, 'ok.py');
      assert.equal(created.res.webhook_secret, '');
      const ruleId = created.res.id as string;
      const bad = await call('CreateAlertRule', {
        workspace_id: ws,
        name: 'bad',
        conditions: ['exploded'],
        webhook_url: 'http://127.0.0.1:1/x',
      });
      assert.equal(bad.err?.code, grpc.status.INVALID_ARGUMENT, bad.err?.details);
      const viewer = await newUser(s, 'alert-grpc-viewer@example.com', 'viewer');
      const denied = await call('TestAlertRule', { workspace_id: ws, rule_id: ruleId }, viewer.token);
      assert.equal(denied.err?.code, grpc.status.PERMISSION_DENIED, denied.err?.details);
      const listed = await call('ListAlertRules', { workspace_id: ws }, viewer.token);
      assert.equal(listed.err, null, listed.err?.details);
      assert.ok((listed.res.items as Json[]).some((r) => r.id === ruleId));
      const fired = await call('TestAlertRule', { workspace_id: ws, rule_id: ruleId });
      assert.equal(fired.err, null, fired.err?.details);
      const mail = await smtp.waitFor((m) => m.header('runway-alert-id') === fired.res.alert_id);
      assert.deepEqual(mail.to, ['grpc@example.com']);
      assert.match(mail.header('subject') ?? '', /test alert/);
      const deliveries = await call('ListAlertDeliveries', { workspace_id: ws, rule_id: ruleId });
      assert.equal(deliveries.err, null, deliveries.err?.details);
      const del = await call('DeleteAlertRule', { workspace_id: ws, rule_id: ruleId });
      assert.equal(del.err, null, del.err?.details);
      assert.equal(del.res.deleted, true);

      const cli = (...args: string[]) => runRunwayCli(s, dir, join(dir, 'config'), ...args);
      const made = await cli(
        '--json',
        'alerts',
        'rules',
        'create',
        'cli rule',
        '--on',
        'run_failed',
        '--job',
        'ok.py',
        '--webhook',
        `${hooks.url}/cli`,
        '--rate-limit',
        '5/60',
        '--workspace',
        ws,
      );
      assert.equal(made.code, 0, made.err);
      const rule = JSON.parse(made.out) as Json;
      assert.match(rule.webhook_secret as string, /^whsec_/);
      assert.deepEqual(rule.rate_limit, { max: 5, window_seconds: 60 });
      const list = await cli('alerts', 'rules', 'list', '--workspace', ws);
      assert.equal(list.code, 0, list.err);
      assert.match(list.out, /cli rule/);
      assert.ok(!list.out.includes(rule.webhook_secret as string));
      const test = await cli('--json', 'alerts', 'rules', 'test', rule.id as string, '--workspace', ws);
      assert.equal(test.code, 0, test.err);
      const alertId = (JSON.parse(test.out) as Json).alert_id as string;
      const hook = await hooks.waitFor((h) => h.path === '/cli' && h.alertId === alertId);
      assert.ok(verifySignature(rule.webhook_secret as string, hook.signature, hook.body));
      for (let i = 0; ; i++) {
        const d = await cli('--json', 'alerts', 'deliveries', '--rule', rule.id as string, '--workspace', ws);
        assert.equal(d.code, 0, d.err);
        const items = JSON.parse(d.out) as Json[];
        if (items[0]?.status === 'delivered') break;
        assert.ok(i < 50, d.out);
        await new Promise((r) => setTimeout(r, 100));
      }
      const wrong = await cli(
        'alerts',
        'rules',
        'create',
        'x',
        '--on',
        'exploded',
        '--webhook',
        'http://a.b/',
        '--workspace',
        ws,
      );
      assert.equal(wrong.code, 2, wrong.err);
      assert.match(wrong.err, /--on exploded/);
      const gone = await cli('alerts', 'rules', 'delete', rule.id as string, '--workspace', ws);
      assert.equal(gone.code, 0, gone.err);
      assert.equal((await s.call('GET', `${base()}/rules/${rule.id as string}`)).status, 404);
    } finally {
      client.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
