import { Controller } from '@nestjs/common';
import { MessagePattern } from '@nestjs/microservices';

@Controller()
export class HealthController {
  private readonly startedAt = new Date().toISOString();

  @MessagePattern('runway.rpc.deployments.ping')
  ping() {
    return { service: 'deployments', status: 'ok', startedAt: this.startedAt };
  }
}
