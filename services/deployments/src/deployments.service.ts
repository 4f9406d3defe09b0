import type { ServiceDefinition } from '#libs/service-host';
import { deploymentsProjection } from './deployment/read-models/deployments.projection.js';
import { deploymentsMigrations } from './migrations/index.js';

export const deploymentsService: ServiceDefinition = {
  name: 'deployments',
  migrations: [deploymentsMigrations],
  projections: [deploymentsProjection],
};
