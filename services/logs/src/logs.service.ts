import type { ServiceDefinition } from '#libs/service-host';

export const logsService: ServiceDefinition = { name: 'logs', migrations: [], projections: [] };
