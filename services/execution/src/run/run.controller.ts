import { Controller, Inject } from '@nestjs/common';
import { MessagePattern, Payload } from '@nestjs/microservices';
import { cancelRunRequest, RunRpc, type CancelRunReply } from '#libs/contracts';
import { parseRpcPayload } from '#libs/service-host';
import { RunHandler } from './run.handler.js';

/** Thin: RPC payload → command. */
@Controller()
export class RunController {
  constructor(@Inject(RunHandler) private readonly runs: RunHandler) {}

  @MessagePattern(RunRpc.cancel)
  cancel(@Payload() data: unknown): Promise<CancelRunReply> {
    return this.runs.cancel(parseRpcPayload(cancelRunRequest, data));
  }
}
