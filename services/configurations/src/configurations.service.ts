import type { ServiceDefinition } from '#libs/service-host';
import { configurationsProjection } from './configuration/read-models/configurations.projection.js';
import { configurationsMigrations } from './migrations/index.js';

export const configurationsService: ServiceDefinition = {
  name: 'configurations',
  migrations: [configurationsMigrations],
  projections: [configurationsProjection],
};
