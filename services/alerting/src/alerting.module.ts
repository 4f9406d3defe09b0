import { Logger, Module, type DynamicModule } from '@nestjs/common';
import { loadMasterKey } from '#libs/secrets';
import { SERVICE_CONTEXT, type ServiceContext } from '#libs/service-host';
import { AlertReactors } from './alert-reactors.service.js';
import { AlertingDb } from './alerting.db.js';
import { AlertDeliveryCommands } from './delivery/delivery.handler.js';
import { HealthController } from './health/health.controller.js';
import { AlertRuleController } from './rule/rule.controller.js';
import { AlertRuleCommands } from './rule/rule.handler.js';

@Module({})
export class AlertingModule {
  static forRoot(ctx: ServiceContext): DynamicModule {
    return {
      module: AlertingModule,
      controllers: [HealthController, AlertRuleController],
      providers: [
        { provide: SERVICE_CONTEXT, useValue: ctx },
        AlertingDb,
        {
          provide: AlertRuleCommands,
          // Webhook secrets are sealed with the master key: a bad key fails the start, not a rule.
          useFactory: () =>
            new AlertRuleCommands(
              ctx.store,
              loadMasterKey({ masterKey: ctx.config.masterKey, dataDir: ctx.config.dataDir }, (m) =>
                new Logger('alerting').log(m),
              ),
            ),
        },
        { provide: AlertDeliveryCommands, useFactory: () => new AlertDeliveryCommands(ctx.store) },
        AlertReactors,
      ],
    };
  }
}
