import { Controller } from '@nestjs/common';
import { MessagePattern } from '@nestjs/microservices';

@Controller()
export class HealthController {
  private readonly startedAt = new Date().toISOString();

  @MessagePattern('runway.rpc.scheduling.ping')
  ping() {
    return { service: 'scheduling', status: 'ok', startedAt: this.startedAt };
  }
}
