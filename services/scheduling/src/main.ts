import 'reflect-metadata';
import { runStandaloneService } from '#libs/service-host';
import { SchedulingModule } from './scheduling.module.js';
import { schedulingService } from './scheduling.service.js';

// Bootstrap only: this service as its own process. `npm start` hosts it in-process.
await runStandaloneService(schedulingService, SchedulingModule);
