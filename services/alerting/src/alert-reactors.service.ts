import {
  Inject,
  Injectable,
  Logger,
  type OnApplicationBootstrap,
  type OnModuleDestroy,
} from '@nestjs/common';
import type { Reactor } from '#libs/eventstore';
import { SERVICE_CONTEXT, type ServiceContext } from '#libs/service-host';
import { AlertingDb } from './alerting.db.js';
import { AlertDeliveryCommands } from './delivery/delivery.handler.js';
import { startDeliverReactor } from './delivery/reactors/deliver.reactor.js';
import { startRaiseReactor } from './rule/reactors/raise.reactor.js';
import { AlertRuleCommands } from './rule/rule.handler.js';
import { alertRunsProjection } from './runs/run-jobs.projection.js';

/** Starts the alerting reactions: run ends → AlertRaised (raise), AlertRaised → sent (deliver). */
@Injectable()
export class AlertReactors implements OnApplicationBootstrap, OnModuleDestroy {
  private readonly logger = new Logger('alerting');
  private reactors: Reactor[] = [];

  constructor(
    @Inject(SERVICE_CONTEXT) private readonly ctx: ServiceContext,
    @Inject(AlertingDb) private readonly db: AlertingDb,
    @Inject(AlertRuleCommands) private readonly rules: AlertRuleCommands,
    @Inject(AlertDeliveryCommands) private readonly deliveries: AlertDeliveryCommands,
  ) {}

  async onApplicationBootstrap(): Promise<void> {
    const log = (m: string) => this.logger.warn(m);
    this.reactors.push(
      await startRaiseReactor({
        store: this.ctx.store,
        db: this.db.kysely,
        rules: this.rules,
        waitForRuns: (seq) => this.ctx.waitForProjection(alertRunsProjection.name, seq),
        log,
      }),
      await startDeliverReactor({
        store: this.ctx.store,
        rules: this.rules,
        deliveries: this.deliveries,
        smtp: { url: this.ctx.config.alerting.smtpUrl, from: this.ctx.config.alerting.smtpFrom },
        maxAttempts: this.ctx.config.alerting.maxAttempts,
        retryMs: this.ctx.config.alerting.retryMs,
        log,
      }),
    );
  }

  async onModuleDestroy(): Promise<void> {
    await Promise.all(this.reactors.map((r) => r.stop()));
    this.reactors = [];
  }
}
