import { AggregateTypes } from '#libs/contracts';
import { commandIdFor, reactionMeta, startReactor, type EventStore, type Reactor } from '#libs/eventstore';
import { AlertRaised, type AlertRaisedData, type AlertRuleSpec } from '../../rule/rule.events.js';
import type { AlertRuleCommands } from '../../rule/rule.handler.js';
import type { AlertDeliveryCommands } from '../delivery.handler.js';
import type { AlertChannel } from '../delivery.events.js';
import { sendMail } from '../smtp.js';
import { ALERT_ID_HEADER, postWebhook } from '../webhook.js';

export const DELIVER_REACTOR = 'alerting-deliver';

export interface DeliverReactorDeps {
  store: EventStore;
  rules: AlertRuleCommands;
  deliveries: AlertDeliveryCommands;
  smtp: { url: string | undefined; from: string };
  /** Tries per channel before the alert is a dead letter there. */
  maxAttempts: number;
  /** First delay of a retry (doubles per try, at most 5 minutes). */
  retryMs: number;
  log?: (msg: string) => void;
}

/** The JSON body a webhook receives (and, as text, an email). */
export function alertPayload(workspaceId: string, ruleId: string, ruleName: string, a: AlertRaisedData) {
  return {
    alert_id: a.alertId,
    workspace_id: workspaceId,
    rule_id: ruleId,
    rule_name: ruleName,
    conditions: a.conditions,
    outcome: a.outcome,
    reason: a.reason,
    message: a.message,
    job_id: a.jobId,
    job_name: a.jobName,
    run_id: a.runId,
    run_number: a.runNumber,
    failures_in_row: a.failuresInRow,
    ended_at: a.endedAt,
    suppressed: a.suppressed,
  };
}

function subjectOf(ruleName: string, a: AlertRaisedData): string {
  const what = a.outcome === 'test' ? 'test alert' : a.conditions.join(', ').replace(/_/g, ' ');
  const run = a.runNumber !== null ? ` run #${a.runNumber}` : '';
  return `[runway] ${what}: ${a.jobName ?? 'job'}${run} (rule ${ruleName})`;
}

function textOf(ruleName: string, a: AlertRaisedData): string {
  return [
    `Rule: ${ruleName}`,
    `Conditions: ${a.conditions.join(', ')}`,
    `Job: ${a.jobName ?? a.jobId ?? '-'}`,
    `Run: ${a.runId ?? '-'}${a.runNumber !== null ? ` (#${a.runNumber})` : ''}`,
    `Outcome: ${a.outcome}${a.reason ? ` (${a.reason})` : ''}`,
    `Failures in a row: ${a.failuresInRow}`,
    `Ended at: ${a.endedAt}`,
    `Message: ${a.message}`,
    ...(a.suppressed > 0
      ? [`(${a.suppressed} more alerts of this rule were held back by its rate limit)`]
      : []),
    `Alert id: ${a.alertId}`,
    '',
  ].join('\n');
}

/**
 * AlertRaised → the alert is sent to each of its channels (a signed webhook POST, an email over
 * SMTP) and each try is recorded on the alert's `alert-delivery` aggregate: AlertDelivered, or
 * AlertDeliveryFailed and, after `maxAttempts`, AlertDeadLettered. A channel still pending makes
 * the reaction fail: the event is redelivered after a delay that doubles per try. Durable: an
 * alert raised but not yet recorded as sent (a crash in between) is sent again when the event is
 * redelivered; the receiver drops the repeat by its `Runway-Alert-Id`.
 */
export function startDeliverReactor(deps: DeliverReactorDeps): Promise<Reactor> {
  return startReactor({
    name: DELIVER_REACTOR,
    store: deps.store,
    eventTypes: ['AlertRaised'],
    aggregateTypes: [AggregateTypes.alertRule],
    // A process that died mid-send: its alert is redelivered (sent again) after 10 s, not 60.
    ackWaitMs: 10_000,
    retryDelayMs: deps.retryMs,
    maxRetryDelayMs: Math.max(deps.retryMs, 300_000),
    ...(deps.log ? { log: deps.log } : {}),
    react: async (event) => {
      const { workspaceId, id: ruleId } = event.ref;
      const alert = AlertRaised.schema.parse(event.data);
      const rule = await deps.rules.state(workspaceId, ruleId);
      const spec: AlertRuleSpec | null = rule.spec;
      if (!spec) return;
      let state = await deps.deliveries.state(workspaceId, alert.alertId);
      const pending: AlertChannel[] = [];
      for (const channel of alert.channels) {
        const ch = state[channel];
        if (ch?.done) continue;
        const attempt = (ch?.attempts ?? 0) + 1;
        let error: string | null = null;
        try {
          await send(deps, workspaceId, ruleId, spec, alert, channel);
        } catch (err) {
          error = err instanceof Error ? err.message : String(err);
        }
        state = await deps.deliveries.record(
          workspaceId,
          alert.alertId,
          { type: 'RecordDeliveryAttempt', ruleId, channel, error, maxAttempts: deps.maxAttempts },
          {
            ...reactionMeta(DELIVER_REACTOR, event, 'alerting'),
            commandId: `${commandIdFor(DELIVER_REACTOR, event)}:${channel}:${attempt}`,
          },
        );
        if (!state[channel]?.done) pending.push(channel);
      }
      if (pending.length > 0)
        throw new Error(`alert ${alert.alertId}: ${pending.join(', ')} not delivered yet, trying again`);
    },
  });
}

async function send(
  deps: DeliverReactorDeps,
  workspaceId: string,
  ruleId: string,
  spec: AlertRuleSpec,
  alert: AlertRaisedData,
  channel: AlertChannel,
): Promise<void> {
  switch (channel) {
    case 'webhook': {
      if (!spec.webhook) throw new Error('the rule has no webhook any more');
      const secret = deps.rules.openSecret(workspaceId, ruleId, spec.webhook.sealedSecret);
      const body = JSON.stringify(alertPayload(workspaceId, ruleId, spec.name, alert));
      return postWebhook(spec.webhook.url, secret, alert.alertId, body);
    }
    case 'email': {
      if (!spec.email) throw new Error('the rule has no email target any more');
      if (!deps.smtp.url) throw new Error('no SMTP server is configured (RUNWAY_SMTP_URL)');
      return sendMail(deps.smtp.url, {
        from: deps.smtp.from,
        to: spec.email.to,
        subject: subjectOf(spec.name, alert),
        text: textOf(spec.name, alert),
        headers: { [ALERT_ID_HEADER]: alert.alertId },
      });
    }
    default: {
      const never: never = channel;
      throw new Error(`unknown channel ${String(never)}`);
    }
  }
}
