import 'reflect-metadata';
import { runStandaloneService } from '#libs/service-host';
import { ExecutionModule } from './execution.module.js';
import { executionService } from './execution.service.js';

// Bootstrap only: this service as its own process. `npm start` hosts it in-process.
await runStandaloneService(executionService, ExecutionModule);
