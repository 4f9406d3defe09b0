import {
  Inject,
  Injectable,
  Logger,
  type OnApplicationBootstrap,
  type OnApplicationShutdown,
} from '@nestjs/common';
import type { Kysely } from 'kysely';
import { PeriodicTask, SERVICE_CONTEXT, type ServiceContext } from '#libs/service-host';
import { EXECUTION_DB } from '../database.js';
import type { ExecutionTables } from '../migrations/index.js';
import { RunArchiver } from './run-archiver.js';

const PASS_EVERY_MS = 60 * 60_000;

/** Archives runs that ended more than RUNWAY_ARCHIVE_RUNS_AFTER_DAYS ago, at start and then hourly. */
@Injectable()
export class RunArchiverService implements OnApplicationBootstrap, OnApplicationShutdown {
  private task: PeriodicTask | undefined;
  private readonly logger = new Logger('run-archiver');

  constructor(
    @Inject(SERVICE_CONTEXT) private readonly ctx: ServiceContext,
    @Inject(EXECUTION_DB) private readonly db: Kysely<ExecutionTables>,
  ) {}

  onApplicationBootstrap(): void {
    const afterMs = this.ctx.config.archiveRunsAfterMs;
    if (afterMs <= 0) return;
    const archiver = new RunArchiver(this.ctx.store, this.db, { afterMs });
    this.task = new PeriodicTask(
      async () => {
        const pass = await archiver.archiveOnce();
        if (pass && pass.subjects > 0)
          this.logger.log(
            `archived ${pass.subjects} subjects (${pass.commits} commits) of ${pass.runs} runs`,
          );
      },
      () => PASS_EVERY_MS,
      (err) => this.logger.warn(`archive pass failed: ${err instanceof Error ? err.message : String(err)}`),
    );
    this.task.start();
  }

  async onApplicationShutdown(): Promise<void> {
    await this.task?.stop();
  }
}
