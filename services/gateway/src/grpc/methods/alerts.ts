/** gRPC methods of the alert slice: alert rules and their deliveries. */

import { z } from 'zod';
import { parseInput } from '#libs/http';
import {
  alertRuleBody,
  toAlertDeliveryResponse,
  toAlertRuleResponse,
  toDraft,
} from '../../alert/alerts.controller.js';
import { has, num, read, required, str, who, workspaceOf, write, type Method } from './common.js';

export const alertsMethods: Record<string, Method> = {
  ListAlertRules: {
    auth: read,
    handle: async (s, r) => ({ items: (await s.alerts.listRules(workspaceOf(r))).map(alertRuleMessage) }),
  },
  CreateAlertRule: {
    auth: write,
    handle: async (s, r, c) => {
      const rate = r.rate_limit;
      const emails = Array.isArray(r.email_to) ? r.email_to.filter((e) => typeof e === 'string') : [];
      const body = parseInput(
        alertRuleBody,
        {
          name: str(r, 'name'),
          job: str(r, 'job') || null,
          conditions: Array.isArray(r.conditions) ? r.conditions : [],
          ...(has(r, 'failures_in_row') ? { failures_in_row: num(r, 'failures_in_row') } : {}),
          webhook_url: str(r, 'webhook_url') || null,
          email_to: emails.length > 0 ? emails : null,
          ...(rate && typeof rate === 'object' && 'max' in rate && 'window_seconds' in rate
            ? { rate_limit: { max: rate.max, window_seconds: rate.window_seconds } }
            : {}),
        },
        'request',
      );
      const { rule, webhookSecret } = await s.alerts.createRule(who(c), workspaceOf(r), toDraft(body));
      return { ...alertRuleMessage(rule), webhook_secret: webhookSecret ?? '' };
    },
  },
  DeleteAlertRule: {
    auth: write,
    handle: async (s, r, c) => {
      const rule = await s.alerts.deleteRule(who(c), workspaceOf(r), required(r, 'rule_id'));
      return { id: rule.rule_id, deleted: true };
    },
  },
  TestAlertRule: {
    auth: write,
    handle: async (s, r, c) => ({
      alert_id: await s.alerts.testFire(who(c), workspaceOf(r), required(r, 'rule_id')),
    }),
  },
  ListAlertDeliveries: {
    auth: read,
    handle: async (s, r) => {
      const q = parseInput(
        z.object({
          status: z.enum(['pending', 'delivered', 'dead']).optional(),
          ruleId: z.string().uuid().optional(),
          limit: z.number().int().min(1).max(1000).default(100),
        }),
        {
          ...(str(r, 'status') ? { status: str(r, 'status') } : {}),
          ...(str(r, 'rule_id') ? { ruleId: str(r, 'rule_id') } : {}),
          ...(num(r, 'limit') ? { limit: num(r, 'limit') } : {}),
        },
        'request',
      );
      const rows = await s.alerts.listDeliveries(workspaceOf(r), q);
      return {
        items: rows.map(toAlertDeliveryResponse).map((d) => ({
          ...d,
          run_id: d.run_id ?? '',
          job_name: d.job_name ?? '',
          last_error: d.last_error ?? '',
        })),
      };
    },
  },
};

/** An alert rule as runway.proto says it (no secret: only CreateAlertRule adds it). */
function alertRuleMessage(rule: Parameters<typeof toAlertRuleResponse>[0]) {
  const r = toAlertRuleResponse(rule);
  return {
    ...r,
    job_id: r.job_id ?? '',
    job_name: r.job_name ?? '',
    webhook_url: r.webhook_url ?? '',
    email_to: r.email_to ?? [],
  };
}
