import { Controller } from '@nestjs/common';
import { MessagePattern } from '@nestjs/microservices';

@Controller()
export class HealthController {
  private readonly startedAt = new Date().toISOString();

  @MessagePattern('runway.rpc.logs.ping')
  ping() {
    return { service: 'logs', status: 'ok', startedAt: this.startedAt };
  }
}
