import { Logger, Module, type DynamicModule } from '@nestjs/common';
import { loadMasterKey } from '#libs/secrets';
import { SERVICE_CONTEXT, type ServiceContext } from '#libs/service-host';
import { ConfigurationController } from './configuration/configuration.controller.js';
import { ConfigurationHandler } from './configuration/configuration.handler.js';
import { ConfigurationContentStore } from '#libs/configuration-files';
import { HealthController } from './health/health.controller.js';
import { Keyring } from './keyring/keyring.js';

@Module({})
export class ConfigurationsModule {
  static forRoot(ctx: ServiceContext): DynamicModule {
    return {
      module: ConfigurationsModule,
      controllers: [HealthController, ConfigurationController],
      providers: [
        { provide: SERVICE_CONTEXT, useValue: ctx },
        {
          provide: Keyring,
          // The master key is loaded (or created, mode 0600) at start: a bad key fails the start, not an upload.
          useFactory: () => {
            const logger = new Logger('configurations');
            return new Keyring(
              ctx.store,
              loadMasterKey({ masterKey: ctx.config.masterKey, dataDir: ctx.config.dataDir }, (m) =>
                logger.log(m),
              ),
            );
          },
        },
        {
          provide: ConfigurationContentStore,
          useFactory: () =>
            ConfigurationContentStore.open(ctx.nats, ctx.config.events.subjectPrefix, {
              replicas: ctx.config.nats.replicas,
            }),
        },
        ConfigurationHandler,
      ],
    };
  }
}
