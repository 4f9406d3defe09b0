import { Controller } from '@nestjs/common';
import { MessagePattern } from '@nestjs/microservices';

@Controller()
export class HealthController {
  private readonly startedAt = new Date().toISOString();

  @MessagePattern('runway.rpc.configurations.ping')
  ping() {
    return { service: 'configurations', status: 'ok', startedAt: this.startedAt };
  }
}
