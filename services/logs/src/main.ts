import 'reflect-metadata';
import { runStandaloneService } from '#libs/service-host';
import { LogsModule } from './logs.module.js';
import { logsService } from './logs.service.js';

// Bootstrap only: this service as its own process. `npm start` hosts it in-process.
await runStandaloneService(logsService, LogsModule);
