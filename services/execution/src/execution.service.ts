import type { ServiceDefinition } from '#libs/service-host';
import { executionMigrations } from './migrations/index.js';
import { pipelinesProjection } from './run/read-models/pipelines.projection.js';
import { runsProjection } from './run/read-models/runs.projection.js';
import { runPrivateEvents } from './run/run.events.js';

export const executionService: ServiceDefinition = {
  name: 'execution',
  migrations: [executionMigrations],
  register: (registry) => registry.register(...runPrivateEvents),
  projections: [runsProjection, pipelinesProjection],
};
