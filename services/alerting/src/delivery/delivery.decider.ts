import { DomainError, type Decider } from '#libs/eventstore';
import type { AlertChannel, AlertDeliveryEvent } from './delivery.events.js';

/** Commands of the `alert-delivery` aggregate (id = alert id). */
export type AlertDeliveryCommand = {
  type: 'RecordDeliveryAttempt';
  ruleId: string;
  channel: AlertChannel;
  /** null: sent; else why not. */
  error: string | null;
  /** Tries allowed per channel: the last failed one dead-letters the channel. */
  maxAttempts: number;
};

export interface ChannelState {
  attempts: number;
  done: 'delivered' | 'dead' | null;
}

export type AlertDeliveryState = Partial<Record<AlertChannel, ChannelState>>;

export function decideRecordDeliveryAttempt(
  c: AlertDeliveryCommand,
  s: AlertDeliveryState,
): AlertDeliveryEvent[] {
  if (c.maxAttempts < 1) throw new DomainError('maxAttempts must be at least 1');
  const ch = s[c.channel] ?? { attempts: 0, done: null };
  if (ch.done) return [];
  const attempt = ch.attempts + 1;
  const { ruleId, channel } = c;
  if (c.error === null) return [{ type: 'AlertDelivered', data: { ruleId, channel, attempt } }];
  const error = c.error.slice(0, 2000);
  const failed: AlertDeliveryEvent = {
    type: 'AlertDeliveryFailed',
    data: { ruleId, channel, attempt, error },
  };
  if (attempt < c.maxAttempts) return [failed];
  return [failed, { type: 'AlertDeadLettered', data: { ruleId, channel, attempts: attempt, error } }];
}

export const alertDeliveryDecider: Decider<AlertDeliveryState, AlertDeliveryCommand, AlertDeliveryEvent> = {
  initialState: () => ({}),
  evolve: (s, e) => {
    const ch = s[e.data.channel] ?? { attempts: 0, done: null };
    switch (e.type) {
      case 'AlertDelivered':
        return { ...s, [e.data.channel]: { attempts: e.data.attempt, done: 'delivered' } };
      case 'AlertDeliveryFailed':
        return { ...s, [e.data.channel]: { ...ch, attempts: e.data.attempt } };
      case 'AlertDeadLettered':
        return { ...s, [e.data.channel]: { attempts: e.data.attempts, done: 'dead' } };
      default: {
        const never: never = e;
        return never;
      }
    }
  },
  decide: (command, state) => {
    switch (command.type) {
      case 'RecordDeliveryAttempt':
        return decideRecordDeliveryAttempt(command, state);
      default: {
        const never: never = command.type;
        throw new Error(`unknown alert delivery command ${String(never)}`);
      }
    }
  },
};
