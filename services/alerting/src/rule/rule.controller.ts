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
import { parseRpcPayload } from '#libs/service-host';
import { AlertRuleCommands } from './rule.handler.js';

/** Thin: RPC payload → command on the rule. */
@Controller()
export class AlertRuleController {
  constructor(@Inject(AlertRuleCommands) private readonly rules: AlertRuleCommands) {}

  @MessagePattern(AlertRpc.createRule)
  create(@Payload() data: unknown): Promise<CreateAlertRuleReply> {
    return this.rules.create(parseRpcPayload(createAlertRuleRequest, data));
  }

  @MessagePattern(AlertRpc.updateRule)
  update(@Payload() data: unknown): Promise<AlertRuleSeqReply> {
    return this.rules.update(parseRpcPayload(updateAlertRuleRequest, data));
  }

  @MessagePattern(AlertRpc.deleteRule)
  delete(@Payload() data: unknown): Promise<AlertRuleSeqReply> {
    return this.rules.delete(parseRpcPayload(deleteAlertRuleRequest, data));
  }

  @MessagePattern(AlertRpc.testFire)
  testFire(@Payload() data: unknown): Promise<TestFireAlertRuleReply> {
    return this.rules.testFire(parseRpcPayload(testFireAlertRuleRequest, data));
  }
}
