import 'reflect-metadata';
import { runStandaloneService } from '#libs/service-host';
import { DeploymentsModule } from './deployments.module.js';
import { deploymentsService } from './deployments.service.js';

// Bootstrap only: this service as its own process. `npm start` hosts it in-process.
await runStandaloneService(deploymentsService, DeploymentsModule);
