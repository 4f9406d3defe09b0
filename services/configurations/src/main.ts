import 'reflect-metadata';
import { runStandaloneService } from '#libs/service-host';
import { ConfigurationsModule } from './configurations.module.js';
import { configurationsService } from './configurations.service.js';

// Bootstrap only: this service as its own process. `npm start` hosts it in-process.
await runStandaloneService(configurationsService, ConfigurationsModule);
