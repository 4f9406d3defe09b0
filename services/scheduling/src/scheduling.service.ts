import type { ServiceDefinition } from '#libs/service-host';

export const schedulingService: ServiceDefinition = { name: 'scheduling', migrations: [], projections: [] };
