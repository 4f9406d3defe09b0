import {
  Inject,
  Injectable,
  Logger,
  type OnApplicationBootstrap,
  type OnApplicationShutdown,
} from '@nestjs/common';
import type { Kysely } from 'kysely';
import { SERVICE_CONTEXT, type ServiceContext } from '#libs/service-host';
import { EXECUTION_DB } from '../database.js';
import type { ExecutionTables } from '../migrations/index.js';
import { RunHandler } from '../run/run.handler.js';
import { RunLeases } from './leases.js';
import { LeaseReaper } from './reaper.js';

/** The execution service fails runs whose worker is gone, even when no worker runs at all. */
@Injectable()
export class ReaperService implements OnApplicationBootstrap, OnApplicationShutdown {
  private reaper: LeaseReaper | undefined;
  private readonly logger = new Logger('reaper');

  constructor(
    @Inject(SERVICE_CONTEXT) private readonly ctx: ServiceContext,
    @Inject(RunHandler) private readonly runs: RunHandler,
    @Inject(EXECUTION_DB) private readonly db: Kysely<ExecutionTables>,
  ) {}

  async onApplicationBootstrap(): Promise<void> {
    const leases = await RunLeases.open(
      this.ctx.nats,
      this.ctx.config.events.subjectPrefix,
      undefined,
      this.ctx.config.kvMaxBytes,
      this.ctx.config.nats.replicas,
    );
    this.reaper = new LeaseReaper(this.db, leases, this.runs, {
      onError: (err) => this.logger.warn(`sweep failed: ${err instanceof Error ? err.message : String(err)}`),
      onReaped: (id) => this.logger.warn(`run ${id}: its worker is gone, failed with reason worker_lost`),
    });
    this.reaper.start();
  }

  async onApplicationShutdown(): Promise<void> {
    await this.reaper?.stop();
  }
}
