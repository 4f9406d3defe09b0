import { Module, type DynamicModule } from '@nestjs/common';
import { SERVICE_CONTEXT, type ServiceContext } from '#libs/service-host';
import { HealthController } from './health/health.controller.js';
import { JobController } from './job/job.controller.js';
import { JobHandler } from './job/job.handler.js';
import { SchedulerService } from './scheduler/scheduler.service.js';
import { SchedulingDb } from './scheduling.db.js';

@Module({})
export class SchedulingModule {
  static forRoot(ctx: ServiceContext): DynamicModule {
    return {
      module: SchedulingModule,
      controllers: [HealthController, JobController],
      providers: [{ provide: SERVICE_CONTEXT, useValue: ctx }, SchedulingDb, JobHandler, SchedulerService],
    };
  }
}
