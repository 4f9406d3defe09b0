import { describe, it } from 'node:test';
import { deciderSpec } from '#libs/testing';
import { alertDeliveryDecider, type AlertDeliveryCommand } from './delivery.decider.js';
import type { AlertDeliveryEvent } from './delivery.events.js';

const ruleId = '11111111-1111-4111-8111-111111111111';
const attempt = (error: string | null, channel: 'webhook' | 'email' = 'webhook'): AlertDeliveryCommand => ({
  type: 'RecordDeliveryAttempt',
  ruleId,
  channel,
  error,
  maxAttempts: 3,
});
const failedTry = (n: number): AlertDeliveryEvent => ({
  type: 'AlertDeliveryFailed',
  data: { ruleId, channel: 'webhook', attempt: n, error: 'webhook answered 500' },
});
const s = deciderSpec(alertDeliveryDecider);

describe('alert delivery decider', () => {
  it('records a sent alert once', () => {
    s.given([])
      .when(attempt(null))
      .then([{ type: 'AlertDelivered', data: { ruleId, channel: 'webhook', attempt: 1 } }]);
    s.given([{ type: 'AlertDelivered', data: { ruleId, channel: 'webhook', attempt: 1 } }])
      .when(attempt(null))
      .thenNothing();
  });

  it('counts failed tries and dead-letters the channel at the last one', () => {
    s.given([])
      .when(attempt('webhook answered 500'))
      .then([failedTry(1)]);
    s.given([failedTry(1)])
      .when(attempt(null))
      .then([{ type: 'AlertDelivered', data: { ruleId, channel: 'webhook', attempt: 2 } }]);
    s.given([failedTry(1), failedTry(2)])
      .when(attempt('webhook answered 500'))
      .then([
        failedTry(3),
        {
          type: 'AlertDeadLettered',
          data: { ruleId, channel: 'webhook', attempts: 3, error: 'webhook answered 500' },
        },
      ]);
    const dead: AlertDeliveryEvent = {
      type: 'AlertDeadLettered',
      data: { ruleId, channel: 'webhook', attempts: 3, error: 'x' },
    };
    s.given([failedTry(1), failedTry(2), failedTry(3), dead])
      .when(attempt(null))
      .thenNothing();
    // Channels are independent.
    s.given([failedTry(1), failedTry(2), failedTry(3), dead])
      .when(attempt(null, 'email'))
      .then([{ type: 'AlertDelivered', data: { ruleId, channel: 'email', attempt: 1 } }]);
  });
});
