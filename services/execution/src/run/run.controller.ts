import { Controller, Inject } from '@nestjs/common';
import { MessagePattern, Payload } from '@nestjs/microservices';
import { cancelRunRequest, RunRpc, type CancelRunReply } from '#libs/contracts';
import { DomainError } from '#libs/eventstore';
import { RunHandler } from './run.handler.js';

/** Thin: RPC payload → command. */
@Controller()
export class RunController {
  constructor(@Inject(RunHandler) private readonly runs: RunHandler) {}

  @MessagePattern(RunRpc.cancel)
  cancel(@Payload() data: unknown): Promise<CancelRunReply> {
    const r = cancelRunRequest.safeParse(data);
    if (!r.success) throw new DomainError(`invalid request: ${r.error.message}`);
    return this.runs.cancel(r.data);
  }
}
