import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { startStackProcess } from '../support/process.js';
import { startTestStack, type TestStack } from '../support/stack.js';
import type { Json } from '../jobs/support.js';
import { startHookReceiver, verifySignature, type HookReceiver } from './support.js';

/** The alerting service in its own process (services/alerting main), on the stack's NATS and database. */
async function startAlerting(s: TestStack): Promise<ChildProcess> {
  return (
    await startStackProcess(s, 'dist/services/alerting/src/main.js', /runway alerting ready/, {
      RUNWAY_ALERT_RETRY_MS: '100',
    })
  ).child;
}

describe('an alert raised but not sent when the alerting service dies is sent after its restart', () => {
  let s: TestStack;
  let hooks: HookReceiver;
  let alerting: ChildProcess | undefined;

  before(async () => {
    // /hang leaves its first request without an answer (the service dies meanwhile), then 204.
    hooks = await startHookReceiver((path, n) => (path === '/hang' && n === 1 ? 0 : 204));
    s = await startTestStack({ RUNWAY_SERVICES: 'deployments,configurations,scheduling,execution,logs' });
    alerting = await startAlerting(s);
  });
  after(async () => {
    alerting?.kill('SIGKILL');
    await s?.stop();
    await hooks?.stop();
  });

  it('re-sends the same alert (same Runway-Alert-Id, same signed body) and records it delivered', async () => {
    const base = `/api/v1/workspaces/${s.workspaceId}/alerts`;
    const created = await s.call('POST', `${base}/rules`, {
      name: 'crash',
      conditions: ['run_failed'],
      webhook_url: `${hooks.url}/hang`,
    });
    assert.equal(created.status, 201, created.text);
    const rule = created.json as Json;
    const fired = await s.call('POST', `${base}/rules/${rule.id as string}/test`);
    assert.equal(fired.status, 202, fired.text);
    const alertId = (fired.json as Json).alert_id as string;

    const first = await hooks.waitFor((h) => h.alertId === alertId);
    alerting!.kill('SIGKILL');
    await new Promise((r) => alerting!.once('exit', r));
    alerting = await startAlerting(s);

    const second = await hooks.waitFor((h) => h.alertId === alertId && h.answered === 204, 30_000);
    assert.equal(second.body, first.body);
    assert.ok(verifySignature(rule.webhook_secret as string, second.signature, second.body));
    for (let i = 0; ; i++) {
      const r = await s.call('GET', `${base}/deliveries?rule_id=${rule.id as string}`);
      const d = (r.json as { items: Json[] }).items.find((x) => x.alert_id === alertId);
      if (d?.status === 'delivered') {
        // The try cut short by the kill was never recorded: one recorded try.
        assert.equal(d.attempts, 1);
        break;
      }
      assert.ok(i < 100, r.text);
      await new Promise((res) => setTimeout(res, 100));
    }
    assert.equal(hooks.hooks.filter((h) => h.alertId === alertId).length, 2);
  });
});
