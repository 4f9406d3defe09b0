import type { ServiceDefinition } from '#libs/service-host';
import { executionMigrations } from './migrations/index.js';
import { pipelinesProjection } from './run/read-models/pipelines.projection.js';
import { runsProjection } from './run/read-models/runs.projection.js';

export const executionService: ServiceDefinition = {
  name: 'execution',
  migrations: [executionMigrations],
  projections: [runsProjection, pipelinesProjection],
};
