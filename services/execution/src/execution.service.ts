import type { ServiceDefinition } from '#libs/service-host';

export const executionService: ServiceDefinition = { name: 'execution', migrations: [], projections: [] };
