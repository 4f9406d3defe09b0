import type { ServiceDefinition } from '#libs/service-host';

export const configurationsService: ServiceDefinition = { name: 'configurations', migrations: [], projections: [] };
