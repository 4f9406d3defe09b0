import {
  Inject,
  Injectable,
  Logger,
  type OnApplicationBootstrap,
  type OnModuleDestroy,
} from '@nestjs/common';
import type { Kysely } from 'kysely';
import { SERVICE_CONTEXT, type ServiceContext } from '#libs/service-host';
import { JobHandler } from '../job/job.handler.js';
import type { SchedulingTables } from '../migrations/index.js';
import { Scheduler } from './scheduler.js';

/** Runs the scheduler in every scheduling service (replicas are safe); RUNWAY_SCHEDULER=off disables it. */
@Injectable()
export class SchedulerService implements OnApplicationBootstrap, OnModuleDestroy {
  private readonly logger = new Logger('scheduler');
  readonly scheduler: Scheduler;

  constructor(@Inject(SERVICE_CONTEXT) ctx: ServiceContext, @Inject(JobHandler) jobs: JobHandler) {
    this.scheduler = new Scheduler(ctx.db as Kysely<SchedulingTables>, jobs, {
      log: (m) => this.logger.warn(m),
    });
  }

  onApplicationBootstrap(): void {
    if (process.env.RUNWAY_SCHEDULER !== 'off') this.scheduler.start();
  }

  onModuleDestroy(): Promise<void> {
    return this.scheduler.stop();
  }
}
