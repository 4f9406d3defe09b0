import type { ServiceDefinition } from '#libs/service-host';

export const deploymentsService: ServiceDefinition = { name: 'deployments', migrations: [], projections: [] };
