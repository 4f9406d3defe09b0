import { z } from 'zod';
import { defineEvent, type EventOf, type EventRegistry } from '#libs/events';
import { alertConditionNames, runFailureReasonSchema } from '#libs/contracts';

const uuid = z.string().uuid();
const isoTime = z.string().datetime({ offset: true });

/** What a rule reacts to. */
export const alertConditionSchema = z.enum(alertConditionNames);
export type AlertCondition = z.infer<typeof alertConditionSchema>;

/** Where an alert goes. The webhook's signing secret is sealed with the master key (never in clear). */
export const webhookTargetSchema = z.object({
  url: z.string().url().max(2000),
  /** base64 of the sealed secret (AEAD with the master key, aad = the rule). */
  sealedSecret: z.string().min(1).max(400),
});
export const emailTargetSchema = z.object({ to: z.array(z.string().email().max(320)).min(1).max(20) });

export const alertRuleSpecSchema = z.object({
  name: z.string().min(1).max(200),
  /** null: every job of the workspace. */
  jobId: uuid.nullable(),
  jobName: z.string().min(1).max(500).nullable(),
  conditions: z.array(alertConditionSchema).min(1).max(6),
  /** N of `failures_in_row` (alerted when a job's streak of failed runs reaches N). */
  failuresInRow: z.number().int().min(1).max(1000),
  webhook: webhookTargetSchema.nullable(),
  email: emailTargetSchema.nullable(),
  /** At most `max` alerts per `windowSeconds`; the rest are counted and summarised in the next one. */
  rateLimit: z.object({
    max: z.number().int().min(1).max(10_000),
    windowSeconds: z.number().int().min(1).max(86_400),
  }),
  enabled: z.boolean(),
});
export type AlertRuleSpec = z.infer<typeof alertRuleSpecSchema>;

/** Aggregate `alert-rule`, id = the rule id (random). */
export const AlertRuleCreated = defineEvent(
  'AlertRuleCreated',
  z.object({ ruleId: uuid, spec: alertRuleSpecSchema, createdBy: z.string().min(1) }),
);
export const AlertRuleUpdated = defineEvent(
  'AlertRuleUpdated',
  z.object({ spec: alertRuleSpecSchema, changed: z.array(z.string()).min(1), updatedBy: z.string().min(1) }),
);
export const AlertRuleDeleted = defineEvent('AlertRuleDeleted', z.object({ deletedBy: z.string().min(1) }));

/** A run of a job the rule watches ended and moved the job's streak of failures. */
export const AlertRunNoted = defineEvent(
  'AlertRunNoted',
  z.object({ runId: uuid, jobId: uuid, failuresInRow: z.number().int().min(0) }),
);

export const alertOutcomeSchema = z.enum(['completed', 'failed', 'skipped', 'test']);

/** The rule matched a run: one alert (id = uuidv5(rule, run)), delivered to the rule's targets by the deliver reactor. */
export const AlertRaised = defineEvent(
  'AlertRaised',
  z.object({
    alertId: uuid,
    runId: uuid.nullable(),
    jobId: uuid.nullable(),
    jobName: z.string().max(500).nullable(),
    runNumber: z.number().int().min(1).nullable(),
    conditions: z.array(z.union([alertConditionSchema, z.literal('test')])).min(1),
    outcome: alertOutcomeSchema,
    reason: runFailureReasonSchema.nullable(),
    message: z.string().max(4000),
    failuresInRow: z.number().int().min(0),
    endedAt: isoTime,
    /** Alerts of this rule held back by its rate limit since its previous alert. */
    suppressed: z.number().int().min(0),
    /** The channels it goes to. */
    channels: z.array(z.enum(['webhook', 'email'])),
  }),
);

/** The rule matched a run but its rate limit was reached: counted, summarised in the next alert. */
export const AlertSuppressed = defineEvent(
  'AlertSuppressed',
  z.object({ alertId: uuid, runId: uuid, conditions: z.array(alertConditionSchema).min(1) }),
);

export const alertRuleEvents = [
  AlertRuleCreated,
  AlertRuleUpdated,
  AlertRuleDeleted,
  AlertRunNoted,
  AlertRaised,
  AlertSuppressed,
] as const;
export type AlertRuleEvent = EventOf<typeof alertRuleEvents>;
export type AlertRaisedData = z.infer<typeof AlertRaised.schema>;

/** The alert rule's events are private to the alerting service: registered on top of the integration events. */
export function registerAlertRuleEvents(registry: EventRegistry): EventRegistry {
  return registry.register(...alertRuleEvents);
}
