import {
  Body,
  Controller,
  Delete,
  Get,
  Headers,
  HttpCode,
  Inject,
  Param,
  Post,
  Put,
  Query,
  Req,
} from '@nestjs/common';
import { z } from 'zod';
import { alertConditionNames } from '#libs/contracts';
import { ApiDoc, parseInput } from '#libs/http';
import type { AuthedRequest } from '../auth/auth.guard.js';
import { Authenticated } from '../auth/authenticated.decorator.js';
import { principalOf } from '../auth/workspace-access.js';
import {
  AlertsService,
  type AlertDeliveryRecord,
  type AlertRuleDraft,
  type AlertRuleRecord,
} from './alerts.service.js';

export const alertRuleBody = z
  .object({
    name: z.string().min(1).max(200),
    /** A job's id or name; null or absent: every job of the workspace. */
    job: z.string().min(1).max(500).nullable().default(null),
    conditions: z.array(z.enum(alertConditionNames)).min(1).max(6),
    failures_in_row: z.number().int().min(1).max(1000).default(3),
    webhook_url: z
      .string()
      .url()
      .max(2000)
      .refine((u) => /^https?:\/\//i.test(u), 'must be an http:// or https:// URL')
      .nullable()
      .default(null),
    email_to: z.array(z.string().email().max(320)).min(1).max(20).nullable().default(null),
    rate_limit: z
      .object({
        max: z.number().int().min(1).max(10_000),
        window_seconds: z.number().int().min(1).max(86_400),
      })
      .default({ max: 10, window_seconds: 600 }),
    enabled: z.boolean().default(true),
  })
  .strict()
  .refine((b) => b.webhook_url !== null || b.email_to !== null, 'give webhook_url or email_to (or both)');
export type AlertRuleBody = z.infer<typeof alertRuleBody>;

export const alertRuleResponse = z.object({
  id: z.string().uuid(),
  workspace_id: z.string().uuid(),
  name: z.string(),
  job_id: z.string().uuid().nullable(),
  job_name: z.string().nullable(),
  conditions: z.array(z.string()),
  failures_in_row: z.number().int(),
  webhook_url: z.string().nullable(),
  email_to: z.array(z.string()).nullable(),
  rate_limit: z.object({ max: z.number().int(), window_seconds: z.number().int() }),
  enabled: z.boolean(),
  created_by: z.string(),
  date_added: z.string(),
  date_updated: z.string(),
});
export const alertDeliveryResponse = z.object({
  alert_id: z.string().uuid(),
  channel: z.string(),
  rule_id: z.string().uuid(),
  run_id: z.string().uuid().nullable(),
  job_name: z.string().nullable(),
  conditions: z.array(z.string()),
  message: z.string(),
  suppressed: z.number().int(),
  status: z.string().describe('pending | delivered | dead (a dead letter: every try failed)'),
  attempts: z.number().int(),
  last_error: z.string().nullable(),
  raised_at: z.string(),
  date_updated: z.string(),
});
const deliveriesQuery = z.object({
  status: z.enum(['pending', 'delivered', 'dead']).optional(),
  rule_id: z.string().uuid().optional(),
  limit: z.coerce.number().int().min(1).max(1000).default(100),
});

export function toDraft(b: AlertRuleBody): AlertRuleDraft {
  return {
    name: b.name,
    job: b.job,
    conditions: b.conditions,
    failuresInRow: b.failures_in_row,
    webhookUrl: b.webhook_url,
    emailTo: b.email_to,
    rateLimit: { max: b.rate_limit.max, windowSeconds: b.rate_limit.window_seconds },
    enabled: b.enabled,
  };
}

export function toAlertRuleResponse(r: AlertRuleRecord): z.infer<typeof alertRuleResponse> {
  return {
    id: r.rule_id,
    workspace_id: r.workspace_id,
    name: r.name,
    job_id: r.job_id,
    job_name: r.job_name,
    conditions: r.conditions.split(','),
    failures_in_row: r.failures_in_row,
    webhook_url: r.webhook_url,
    email_to: r.email_to ? r.email_to.split(',') : null,
    rate_limit: { max: r.rate_max, window_seconds: r.rate_window_seconds },
    enabled: r.enabled,
    created_by: r.created_by,
    date_added: r.created_at.toISOString(),
    date_updated: r.updated_at.toISOString(),
  };
}

export function toAlertDeliveryResponse(d: AlertDeliveryRecord): z.infer<typeof alertDeliveryResponse> {
  return {
    alert_id: d.alert_id,
    channel: d.channel,
    rule_id: d.rule_id,
    run_id: d.run_id,
    job_name: d.job_name,
    conditions: d.conditions.split(','),
    message: d.message,
    suppressed: d.suppressed,
    status: d.status,
    attempts: d.attempts,
    last_error: d.last_error,
    raised_at: d.raised_at.toISOString(),
    date_updated: d.updated_at.toISOString(),
  };
}

/** Alert rules and their deliveries (dead letters included) of a workspace. Viewers read, members write. */
@Controller('api/v1/workspaces/:ws/alerts')
export class AlertsController {
  constructor(@Inject(AlertsService) private readonly alerts: AlertsService) {}

  @ApiDoc({
    summary: 'List the alert rules of a workspace',
    response: z.object({ items: z.array(alertRuleResponse) }),
  })
  @Authenticated({ workspace: 'read' })
  @Get('rules')
  async list(@Param('ws') ws: string) {
    return { items: (await this.alerts.listRules(ws)).map(toAlertRuleResponse) };
  }

  @ApiDoc({
    summary: 'Create an alert rule; the webhook signing secret is shown in this answer only',
    body: alertRuleBody,
    response: alertRuleResponse.extend({ webhook_secret: z.string().nullable() }),
    successStatus: 201,
  })
  @Authenticated({ workspace: 'write' })
  @Post('rules')
  @HttpCode(201)
  async create(
    @Req() req: AuthedRequest,
    @Param('ws') ws: string,
    @Body() body: unknown,
    @Headers('idempotency-key') key?: string,
  ) {
    const b = parseInput(alertRuleBody, body, 'body');
    const { rule, webhookSecret } = await this.alerts.createRule(principalOf(req), ws, toDraft(b), key);
    return { ...toAlertRuleResponse(rule), webhook_secret: webhookSecret };
  }

  @ApiDoc({ summary: 'An alert rule', response: alertRuleResponse })
  @Authenticated({ workspace: 'read' })
  @Get('rules/:rule')
  async get(@Param('ws') ws: string, @Param('rule') rule: string) {
    return toAlertRuleResponse(await this.alerts.getRule(ws, rule));
  }

  @ApiDoc({
    summary: 'Replace an alert rule (its webhook keeps its secret)',
    body: alertRuleBody,
    response: alertRuleResponse,
  })
  @Authenticated({ workspace: 'write' })
  @Put('rules/:rule')
  async update(
    @Req() req: AuthedRequest,
    @Param('ws') ws: string,
    @Param('rule') rule: string,
    @Body() body: unknown,
  ) {
    const b = parseInput(alertRuleBody, body, 'body');
    return toAlertRuleResponse(await this.alerts.updateRule(principalOf(req), ws, rule, toDraft(b)));
  }

  @ApiDoc({ summary: 'Delete an alert rule', response: z.object({ id: z.string(), deleted: z.boolean() }) })
  @Authenticated({ workspace: 'write' })
  @Delete('rules/:rule')
  async delete(@Req() req: AuthedRequest, @Param('ws') ws: string, @Param('rule') rule: string) {
    const r = await this.alerts.deleteRule(principalOf(req), ws, rule);
    return { id: r.rule_id, deleted: true };
  }

  @ApiDoc({
    summary: 'Send a test alert through the rule (see the deliveries)',
    response: z.object({ alert_id: z.string().uuid() }),
    successStatus: 202,
  })
  @Authenticated({ workspace: 'write' })
  @Post('rules/:rule/test')
  @HttpCode(202)
  async test(@Req() req: AuthedRequest, @Param('ws') ws: string, @Param('rule') rule: string) {
    return { alert_id: await this.alerts.testFire(principalOf(req), ws, rule) };
  }

  @ApiDoc({
    summary: 'The deliveries of alerts, newest first (status=dead: the dead letters)',
    response: z.object({ items: z.array(alertDeliveryResponse) }),
  })
  @Authenticated({ workspace: 'read' })
  @Get('deliveries')
  async deliveries(@Param('ws') ws: string, @Query() query: unknown) {
    const q = parseInput(deliveriesQuery, query, 'query');
    const rows = await this.alerts.listDeliveries(ws, {
      ...(q.status ? { status: q.status } : {}),
      ...(q.rule_id ? { ruleId: q.rule_id } : {}),
      limit: q.limit,
    });
    return { items: rows.map(toAlertDeliveryResponse) };
  }
}
