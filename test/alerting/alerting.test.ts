import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
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

  it('a failed run → one signed webhook and one email within 5 s of its end (p50/p99 over 20 runs)', async () => {
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
    for (let i = 0; i < 20; i++) {
      const runId = await runJob('fail.py');
      const hook = await hooks.waitFor((h) => h.path === '/ok' && h.json.run_id === runId, 30_000);
      const mail = await smtp.waitFor((m) => m.text.includes(runId), 30_000);
      const run = await waitForStatus(s, runId, ['failed']);
      const endedAt = Date.parse(hook.json.ended_at as string);
      assert.ok(Number.isFinite(endedAt), hook.body);
      hookDelays.push(hook.receivedAt - endedAt);
      mailDelays.push(mail.receivedAt - endedAt);

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
    };
    console.log(`alert delay after the run's end (ms, 20 runs): ${JSON.stringify(report)}`);
    for (const d of [...hookDelays, ...mailDelays]) assert.ok(d < 5_000, `an alert took ${d} ms`);

    const deliveries = await s.call('GET', `${base()}/deliveries?rule_id=${rule.id as string}`);
    assert.equal(deliveries.status, 200, deliveries.text);
    const items = (deliveries.json as { items: Json[] }).items;
    assert.equal(items.length, 40);
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
    for (const id of [flaky, dead]) assert.equal((await s.call('DELETE', `${base()}/rules/${id}`)).status, 200);
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
    assert.equal(hooks.hooks.filter((h) => h.json.run_id === runId).length, 0, 'no rule left watches fail.py');
  });
});
