import { Controller } from '@nestjs/common';
import { MessagePattern } from '@nestjs/microservices';

@Controller()
export class HealthController {
  private readonly startedAt = new Date().toISOString();

  @MessagePattern('runway.rpc.execution.ping')
  ping() {
    return { service: 'execution', status: 'ok', startedAt: this.startedAt };
  }
}
