import { randomBytes, randomUUID } from 'node:crypto';
import {
  AggregateTypes,
  type AlertRuleInput,
  type AlertRuleSeqReply,
  type CreateAlertRuleReply,
  type CreateAlertRuleRequest,
  type DeleteAlertRuleRequest,
  type TestFireAlertRuleReply,
  type TestFireAlertRuleRequest,
  type UpdateAlertRuleRequest,
} from '#libs/contracts';
import { CommandHandler, type CommitMeta, type EventStore } from '#libs/eventstore';
import { open, seal, type MasterKey } from '#libs/secrets';
import { alertRuleDecider, type AlertRuleCommand, type AlertRuleState } from './rule.decider.js';
import type { AlertRuleEvent, AlertRuleSpec } from './rule.events.js';

/** The aad of a rule's sealed webhook secret: it opens only for this rule. */
const secretAad = (workspaceId: string, ruleId: string) => `alert-rule:${workspaceId}:${ruleId}`;

/** load → decide → append for the `alert-rule` aggregate (id = rule id). */
export class AlertRuleCommands {
  private readonly handler: CommandHandler<AlertRuleState, AlertRuleCommand, AlertRuleEvent>;

  constructor(
    store: EventStore,
    private readonly master: MasterKey,
  ) {
    this.handler = new CommandHandler(store, alertRuleDecider, { maxRetries: 20, cache: {} });
  }

  ref(workspaceId: string, ruleId: string) {
    return { workspaceId, type: AggregateTypes.alertRule, id: ruleId };
  }

  private spec(input: AlertRuleInput, webhook: AlertRuleSpec['webhook']): AlertRuleSpec {
    return {
      name: input.name,
      jobId: input.jobId,
      jobName: input.jobName,
      conditions: input.conditions,
      failuresInRow: input.failuresInRow,
      webhook,
      email: input.emailTo ? { to: input.emailTo } : null,
      rateLimit: input.rateLimit,
      enabled: input.enabled,
    };
  }

  private sealSecret(workspaceId: string, ruleId: string, secret: string): string {
    return seal(this.master.key, Buffer.from(secret, 'utf8'), secretAad(workspaceId, ruleId)).toString(
      'base64',
    );
  }

  /** The webhook's signing secret, opened for sending. */
  openSecret(workspaceId: string, ruleId: string, sealed: string): string {
    return open(this.master.key, Buffer.from(sealed, 'base64'), secretAad(workspaceId, ruleId)).toString(
      'utf8',
    );
  }

  async create(r: CreateAlertRuleRequest): Promise<CreateAlertRuleReply> {
    const ruleId = randomUUID();
    const secret = r.rule.webhookUrl ? `whsec_${randomBytes(24).toString('base64url')}` : null;
    const webhook =
      r.rule.webhookUrl && secret
        ? { url: r.rule.webhookUrl, sealedSecret: this.sealSecret(r.workspaceId, ruleId, secret) }
        : null;
    const res = await this.handler.handle(
      this.ref(r.workspaceId, ruleId),
      { type: 'CreateAlertRule', ruleId, spec: this.spec(r.rule, webhook), by: r.actor },
      { commandId: r.commandId, actor: r.actor },
    );
    return { ruleId, seq: res.seq, webhookSecret: secret };
  }

  /** A new spec; the webhook keeps its secret (a new URL too: the receiver already knows it). */
  async update(r: UpdateAlertRuleRequest): Promise<AlertRuleSeqReply> {
    const ref = this.ref(r.workspaceId, r.ruleId);
    const { state } = await this.handler.load(ref);
    const old = state.spec?.webhook ?? null;
    const webhook = r.rule.webhookUrl
      ? {
          url: r.rule.webhookUrl,
          sealedSecret:
            old?.sealedSecret ??
            this.sealSecret(r.workspaceId, r.ruleId, `whsec_${randomBytes(24).toString('base64url')}`),
        }
      : null;
    const res = await this.handler.handle(
      ref,
      { type: 'UpdateAlertRule', spec: this.spec(r.rule, webhook), by: r.actor },
      { commandId: r.commandId, actor: r.actor },
    );
    return { seq: res.seq };
  }

  async delete(r: DeleteAlertRuleRequest): Promise<AlertRuleSeqReply> {
    const res = await this.handler.handle(
      this.ref(r.workspaceId, r.ruleId),
      { type: 'DeleteAlertRule', by: r.actor },
      { commandId: r.commandId, actor: r.actor },
    );
    return { seq: res.seq };
  }

  async testFire(r: TestFireAlertRuleRequest): Promise<TestFireAlertRuleReply> {
    const alertId = randomUUID();
    const res = await this.handler.handle(
      this.ref(r.workspaceId, r.ruleId),
      { type: 'TestFireAlertRule', alertId, at: new Date().toISOString(), by: r.actor },
      { commandId: r.commandId, actor: r.actor },
    );
    return { alertId, seq: res.seq };
  }

  /** A run outcome judged by one rule (from the raise reactor). */
  async note(
    workspaceId: string,
    ruleId: string,
    command: Extract<AlertRuleCommand, { type: 'NoteRunOutcome' }>,
    meta: CommitMeta,
  ): Promise<void> {
    await this.handler.handle(this.ref(workspaceId, ruleId), command, meta);
  }

  /** The rule as it is now (the deliver reactor reads its targets). */
  async state(workspaceId: string, ruleId: string): Promise<AlertRuleState> {
    return (await this.handler.load(this.ref(workspaceId, ruleId))).state;
  }
}
