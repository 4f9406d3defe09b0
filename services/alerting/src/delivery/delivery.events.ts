import { z } from 'zod';
import { defineEvent, type EventOf, type EventRegistry } from '#libs/events';

export const alertChannelSchema = z.enum(['webhook', 'email']);
export type AlertChannel = z.infer<typeof alertChannelSchema>;

const attempt = z.number().int().min(1);

/** Aggregate `alert-delivery`, id = the alert id: the sending of one alert to its rule's targets. */
export const AlertDelivered = defineEvent(
  'AlertDelivered',
  z.object({ ruleId: z.string().uuid(), channel: alertChannelSchema, attempt }),
);
export const AlertDeliveryFailed = defineEvent(
  'AlertDeliveryFailed',
  z.object({ ruleId: z.string().uuid(), channel: alertChannelSchema, attempt, error: z.string().max(2000) }),
);
/** After the last try: the alert is not sent to this channel; listed as a dead letter. */
export const AlertDeadLettered = defineEvent(
  'AlertDeadLettered',
  z.object({
    ruleId: z.string().uuid(),
    channel: alertChannelSchema,
    attempts: attempt,
    error: z.string().max(2000),
  }),
);

export const alertDeliveryEvents = [AlertDelivered, AlertDeliveryFailed, AlertDeadLettered] as const;
export type AlertDeliveryEvent = EventOf<typeof alertDeliveryEvents>;

export function registerAlertDeliveryEvents(registry: EventRegistry): EventRegistry {
  return registry.register(...alertDeliveryEvents);
}
