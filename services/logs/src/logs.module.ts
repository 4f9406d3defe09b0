import { Module, type DynamicModule } from '@nestjs/common';
import { SERVICE_CONTEXT, type ServiceContext } from '#libs/service-host';
import { HealthController } from './health/health.controller.js';
import { LogsKeeperService } from './seal/logs-keeper.service.js';

@Module({})
export class LogsModule {
  static forRoot(ctx: ServiceContext): DynamicModule {
    return {
      module: LogsModule,
      controllers: [HealthController],
      providers: [{ provide: SERVICE_CONTEXT, useValue: ctx }, LogsKeeperService],
    };
  }
}
