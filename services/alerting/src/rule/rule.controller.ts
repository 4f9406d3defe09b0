import { Controller, Inject } from '@nestjs/common';
import { MessagePattern, Payload } from '@nestjs/microservices';
import {
  AlertRpc,
  createAlertRuleRequest,
  deleteAlertRuleRequest,
  testFireAlertRuleRequest,
  updateAlertRuleRequest,
  type AlertRuleSeqReply,
  type CreateAlertRuleReply,
  type TestFireAlertRuleReply,
} from '#libs/contracts';
import { DomainError } from '#libs/eventstore';
import { AlertRuleCommands } from './rule.handler.js';

function parse<T>(
  schema: {
    safeParse: (v: unknown) => { success: true; data: T } | { success: false; error: { message: string } };
  },
  data: unknown,
): T {
  const r = schema.safeParse(data);
  if (!r.success) throw new DomainError(`invalid request: ${r.error.message}`);
  return r.data;
}

/** Thin: RPC payload → command on the rule. */
@Controller()
export class AlertRuleController {
  constructor(@Inject(AlertRuleCommands) private readonly rules: AlertRuleCommands) {}

  @MessagePattern(AlertRpc.createRule)
  create(@Payload() data: unknown): Promise<CreateAlertRuleReply> {
    return this.rules.create(parse(createAlertRuleRequest, data));
  }

  @MessagePattern(AlertRpc.updateRule)
  update(@Payload() data: unknown): Promise<AlertRuleSeqReply> {
    return this.rules.update(parse(updateAlertRuleRequest, data));
  }

  @MessagePattern(AlertRpc.deleteRule)
  delete(@Payload() data: unknown): Promise<AlertRuleSeqReply> {
    return this.rules.delete(parse(deleteAlertRuleRequest, data));
  }

  @MessagePattern(AlertRpc.testFire)
  testFire(@Payload() data: unknown): Promise<TestFireAlertRuleReply> {
    return this.rules.testFire(parse(testFireAlertRuleRequest, data));
  }
}
