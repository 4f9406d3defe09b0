import { Module, type DynamicModule } from '@nestjs/common';
import { SERVICE_CONTEXT, type ServiceContext } from '#libs/service-host';
import { HealthController } from './health/health.controller.js';

@Module({})
export class DeploymentsModule {
  static forRoot(ctx: ServiceContext): DynamicModule {
    return { module: DeploymentsModule, controllers: [HealthController], providers: [{ provide: SERVICE_CONTEXT, useValue: ctx }] };
  }
}
