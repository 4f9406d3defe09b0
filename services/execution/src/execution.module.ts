import { Module, type DynamicModule } from '@nestjs/common';
import { SERVICE_CONTEXT, type ServiceContext } from '#libs/service-host';
import { EXECUTION_DB, executionDb } from './database.js';
import { HealthController } from './health/health.controller.js';
import { RunController } from './run/run.controller.js';
import { RunArchiverService } from './run/run-archiver.service.js';
import { SkippedRunReactor } from './run/reactors/skipped-run.reactor.js';
import { RunHandler } from './run/run.handler.js';
import { ReaperService } from './worker/reaper.service.js';

@Module({})
export class ExecutionModule {
  static forRoot(ctx: ServiceContext): DynamicModule {
    return {
      module: ExecutionModule,
      controllers: [HealthController, RunController],
      providers: [
        { provide: SERVICE_CONTEXT, useValue: ctx },
        // The one typed view of the service's database.
        { provide: EXECUTION_DB, useValue: executionDb(ctx.db) },
        RunHandler,
        ReaperService,
        RunArchiverService,
        SkippedRunReactor,
      ],
    };
  }
}
