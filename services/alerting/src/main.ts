import 'reflect-metadata';
import { runStandaloneService } from '#libs/service-host';
import { AlertingModule } from './alerting.module.js';
import { alertingService } from './alerting.service.js';

// Bootstrap only: this service as its own process. `npm start` hosts it in-process.
await runStandaloneService(alertingService, AlertingModule);
