import { Inject, Injectable } from '@nestjs/common';
import type { ClientProxy } from '@nestjs/microservices';
import { randomUUID } from 'node:crypto';
import {
  AlertRpc,
  alertRuleSeqReply,
  createAlertRuleReply,
  testFireAlertRuleReply,
  type AlertRuleInput,
  type CreateAlertRuleRequest,
  type DeleteAlertRuleRequest,
  type TestFireAlertRuleRequest,
  type UpdateAlertRuleRequest,
} from '#libs/contracts';
import { ApiError } from '#libs/http';
import { rpc, SERVICES_CLIENT } from '#libs/service-host';
import {
  listAlertDeliveries,
  type AlertDeliveryRecord,
} from '../../../alerting/src/delivery/read-models/deliveries.queries.js';
import {
  findAlertRule,
  listAlertRules,
  type AlertRuleRecord,
} from '../../../alerting/src/rule/read-models/rules.queries.js';
import type { Principal } from '../auth/authenticator.js';
import { GatewayDatabase } from '../gateway.database.js';
import { JobsService } from '../job/jobs.service.js';

export type { AlertDeliveryRecord, AlertRuleRecord };

/** A rule as the caller gives it: the job by id or name (null: every job). */
export type AlertRuleDraft = Omit<AlertRuleInput, 'jobId' | 'jobName'> & { job: string | null };

export class AlertRuleNotFound extends ApiError {
  constructor(ruleId: string) {
    super(404, `alert rule ${ruleId} not found`);
  }
}

/** Alerts: the one application service behind the REST routes and the gRPC methods. */
@Injectable()
export class AlertsService {
  constructor(
    @Inject(GatewayDatabase) private readonly db: GatewayDatabase,
    @Inject(SERVICES_CLIENT) private readonly client: ClientProxy,
    @Inject(JobsService) private readonly jobs: JobsService,
  ) {}

  listRules(ws: string): Promise<AlertRuleRecord[]> {
    return listAlertRules(this.db.readModels.alertRules, ws);
  }

  async getRule(ws: string, ruleId: string): Promise<AlertRuleRecord> {
    const rule = /^[0-9a-f-]{36}$/i.test(ruleId)
      ? await findAlertRule(this.db.readModels.alertRules, ws, ruleId)
      : undefined;
    if (!rule) throw new AlertRuleNotFound(ruleId);
    return rule;
  }

  private async input(ws: string, draft: AlertRuleDraft): Promise<AlertRuleInput> {
    const { job, ...rest } = draft;
    if (job === null) return { ...rest, jobId: null, jobName: null };
    const row = await this.jobs.require(ws, job);
    return { ...rest, jobId: row.id, jobName: row.name };
  }

  /** Creates a rule; the webhook's signing secret is in this answer only. */
  async createRule(
    p: Principal,
    ws: string,
    draft: AlertRuleDraft,
    idempotencyKey?: string,
  ): Promise<{ rule: AlertRuleRecord; webhookSecret: string | null }> {
    const reply = await rpc(
      this.client,
      AlertRpc.createRule,
      {
        workspaceId: ws,
        actor: p.userId,
        commandId: idempotencyKey ? `alert-rule:${idempotencyKey}` : randomUUID(),
        rule: await this.input(ws, draft),
      } satisfies CreateAlertRuleRequest,
      createAlertRuleReply,
    );
    await this.db.waitForProjection('alert_rules', reply.seq);
    return { rule: await this.getRule(ws, reply.ruleId), webhookSecret: reply.webhookSecret };
  }

  async updateRule(
    p: Principal,
    ws: string,
    ruleId: string,
    draft: AlertRuleDraft,
  ): Promise<AlertRuleRecord> {
    await this.getRule(ws, ruleId);
    const reply = await rpc(
      this.client,
      AlertRpc.updateRule,
      {
        workspaceId: ws,
        actor: p.userId,
        commandId: randomUUID(),
        ruleId,
        rule: await this.input(ws, draft),
      } satisfies UpdateAlertRuleRequest,
      alertRuleSeqReply,
    );
    await this.db.waitForProjection('alert_rules', reply.seq);
    return this.getRule(ws, ruleId);
  }

  async deleteRule(p: Principal, ws: string, ruleId: string): Promise<AlertRuleRecord> {
    const rule = await this.getRule(ws, ruleId);
    const reply = await rpc(
      this.client,
      AlertRpc.deleteRule,
      { workspaceId: ws, actor: p.userId, commandId: randomUUID(), ruleId } satisfies DeleteAlertRuleRequest,
      alertRuleSeqReply,
    );
    await this.db.waitForProjection('alert_rules', reply.seq);
    return rule;
  }

  /** Sends a test alert through the rule's targets (listed with the deliveries). */
  async testFire(p: Principal, ws: string, ruleId: string): Promise<string> {
    await this.getRule(ws, ruleId);
    const reply = await rpc(
      this.client,
      AlertRpc.testFire,
      {
        workspaceId: ws,
        actor: p.userId,
        commandId: randomUUID(),
        ruleId,
      } satisfies TestFireAlertRuleRequest,
      testFireAlertRuleReply,
    );
    return reply.alertId;
  }

  listDeliveries(
    ws: string,
    filter: { status?: string; ruleId?: string; limit?: number },
  ): Promise<AlertDeliveryRecord[]> {
    return listAlertDeliveries(this.db.readModels.alertDeliveries, ws, filter);
  }
}
