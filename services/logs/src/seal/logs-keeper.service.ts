import {
  Inject,
  Injectable,
  Logger,
  type OnApplicationBootstrap,
  type OnModuleDestroy,
  type OnModuleInit,
} from '@nestjs/common';
import { jetstreamManager } from '@nats-io/jetstream';
import type { Reactor } from '#libs/eventstore';
import { ensureLogsStream, RunLogReader, type LogsLocation } from '#libs/run-logs';
import { SERVICE_CONTEXT, type ServiceContext } from '#libs/service-host';
import { NOT_SEALED_YET, startSealReactor } from '../runlog/reactors/seal.reactor.js';
import { RunLogCommands } from '../runlog/runlog.handler.js';

const LEGACY_SEAL_CONSUMER = 'logs_seals';

/**
 * The logs service's own work: it owns the LOGS stream (creates it and applies the retention of
 * RUNWAY_LOGS_MAX_AGE_HOURS / RUNWAY_LOGS_MAX_BYTES at its start) and keeps every run's log sealed
 * (the seal reactor).
 */
@Injectable()
export class LogsKeeperService implements OnModuleInit, OnApplicationBootstrap, OnModuleDestroy {
  private readonly logger = new Logger('logs');
  private readonly loc: LogsLocation;
  private seals: Reactor | undefined;

  constructor(@Inject(SERVICE_CONTEXT) private readonly ctx: ServiceContext) {
    this.loc = { eventsStream: ctx.config.events.stream, subjectPrefix: ctx.config.events.subjectPrefix };
  }

  async onModuleInit(): Promise<void> {
    const name = await ensureLogsStream(this.ctx.nats, this.loc, {
      maxAgeMs: this.ctx.config.logs.maxAgeMs,
      maxBytes: this.ctx.config.logs.maxBytes,
      replicas: this.ctx.config.nats.replicas,
    });
    this.logger.log(`stream ${name} ready`);
    // The seal recorder's consumer on LOGS, before the seal reactor: it would keep every seal pending.
    await (
      await jetstreamManager(this.ctx.nats)
    ).consumers
      .delete(name, LEGACY_SEAL_CONSUMER)
      .catch(() => false);
  }

  async onApplicationBootstrap(): Promise<void> {
    this.seals = await startSealReactor({
      nats: this.ctx.nats,
      store: this.ctx.store,
      loc: this.loc,
      reader: new RunLogReader(this.ctx.nats, this.loc),
      runLogs: new RunLogCommands(this.ctx.store),
      log: (m) => (m.includes(NOT_SEALED_YET) ? this.logger.debug(m) : this.logger.warn(m)),
    });
  }

  async onModuleDestroy(): Promise<void> {
    await this.seals?.stop();
  }
}
