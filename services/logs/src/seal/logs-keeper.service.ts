import {
  Inject,
  Injectable,
  Logger,
  type OnApplicationBootstrap,
  type OnModuleDestroy,
  type OnModuleInit,
} from '@nestjs/common';
import type { Kysely } from 'kysely';
import { ensureLogsStream, RunLogReader, type LogsLocation } from '#libs/run-logs';
import { SERVICE_CONTEXT, type ServiceContext } from '#libs/service-host';
import type { LogsTables } from '../migrations/index.js';
import { SealKeeper } from './seal-keeper.js';

/**
 * The logs service's own work: it owns the LOGS stream (creates it and applies the retention of
 * RUNWAY_LOGS_MAX_AGE_HOURS / RUNWAY_LOGS_MAX_BYTES at its start) and keeps every run's log sealed
 * (SealKeeper).
 */
@Injectable()
export class LogsKeeperService implements OnModuleInit, OnApplicationBootstrap, OnModuleDestroy {
  private readonly logger = new Logger('logs');
  private readonly loc: LogsLocation;
  readonly keeper: SealKeeper;

  constructor(@Inject(SERVICE_CONTEXT) private readonly ctx: ServiceContext) {
    this.loc = { eventsStream: ctx.config.events.stream, subjectPrefix: ctx.config.events.subjectPrefix };
    this.keeper = new SealKeeper(
      ctx.nats,
      ctx.store,
      ctx.db as Kysely<LogsTables>,
      this.loc,
      new RunLogReader(ctx.nats, this.loc),
      { log: (m) => this.logger.warn(m) },
    );
  }

  async onModuleInit(): Promise<void> {
    const name = await ensureLogsStream(this.ctx.nats, this.loc, {
      maxAgeMs: this.ctx.config.logs.maxAgeMs,
      maxBytes: this.ctx.config.logs.maxBytes,
      replicas: this.ctx.config.nats.replicas,
    });
    this.logger.log(`stream ${name} ready`);
  }

  onApplicationBootstrap(): void {
    this.keeper.start();
  }

  onModuleDestroy(): Promise<void> {
    return this.keeper.stop();
  }
}
