import { Controller } from '@nestjs/common';
import { MessagePattern } from '@nestjs/microservices';

@Controller()
export class HealthController {
  private readonly startedAt = new Date().toISOString();

  @MessagePattern('runway.rpc.alerting.ping')
  ping() {
    return { service: 'alerting', status: 'ok', startedAt: this.startedAt };
  }
}
