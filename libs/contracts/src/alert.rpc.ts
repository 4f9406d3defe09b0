import { z } from 'zod';

/** Request/reply patterns of the alerting service (rules; deliveries are read from its read model). */
export const AlertRpc = {
  createRule: 'runway.rpc.alerting.createRule',
  updateRule: 'runway.rpc.alerting.updateRule',
  deleteRule: 'runway.rpc.alerting.deleteRule',
  testFire: 'runway.rpc.alerting.testFire',
} as const;

const uuid = z.string().uuid();

/** What a rule reacts to (a run of a job it watches). */
export const alertConditionNames = [
  'run_failed',
  'timed_out',
  'worker_lost',
  'skipped_by_overlap',
  'failures_in_row',
  'recovered',
] as const;

const webhookUrl = z
  .string()
  .url()
  .max(2000)
  .refine((u) => /^https?:\/\//i.test(u), 'the webhook URL must be http:// or https://');

/** The editable part of a rule, as the API gives it. */
export const alertRuleInput = z.object({
  name: z.string().min(1).max(200),
  /** null: every job of the workspace. */
  jobId: uuid.nullable(),
  jobName: z.string().min(1).max(500).nullable(),
  conditions: z.array(z.enum(alertConditionNames)).min(1).max(6),
  failuresInRow: z.number().int().min(1).max(1000).default(3),
  webhookUrl: webhookUrl.nullable(),
  emailTo: z.array(z.string().email().max(320)).min(1).max(20).nullable(),
  rateLimit: z
    .object({ max: z.number().int().min(1).max(10_000), windowSeconds: z.number().int().min(1).max(86_400) })
    .default({ max: 10, windowSeconds: 600 }),
  enabled: z.boolean().default(true),
});
export type AlertRuleInput = z.infer<typeof alertRuleInput>;

const base = { workspaceId: uuid, actor: z.string().min(1), commandId: z.string().min(1).max(200) };

export const createAlertRuleRequest = z.object({ ...base, rule: alertRuleInput });
export type CreateAlertRuleRequest = z.infer<typeof createAlertRuleRequest>;
export const createAlertRuleReply = z.object({
  ruleId: uuid,
  seq: z.number().int().min(0),
  /** The webhook's signing secret: in this reply only, never again. */
  webhookSecret: z.string().nullable(),
});
export type CreateAlertRuleReply = z.infer<typeof createAlertRuleReply>;

export const updateAlertRuleRequest = z.object({ ...base, ruleId: uuid, rule: alertRuleInput });
export type UpdateAlertRuleRequest = z.infer<typeof updateAlertRuleRequest>;
export const deleteAlertRuleRequest = z.object({ ...base, ruleId: uuid });
export type DeleteAlertRuleRequest = z.infer<typeof deleteAlertRuleRequest>;
export const alertRuleSeqReply = z.object({ seq: z.number().int().min(0) });
export type AlertRuleSeqReply = z.infer<typeof alertRuleSeqReply>;
export const testFireAlertRuleRequest = z.object({ ...base, ruleId: uuid });
export type TestFireAlertRuleRequest = z.infer<typeof testFireAlertRuleRequest>;
export const testFireAlertRuleReply = z.object({ alertId: uuid, seq: z.number().int().min(0) });
export type TestFireAlertRuleReply = z.infer<typeof testFireAlertRuleReply>;
