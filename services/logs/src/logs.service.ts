import type { ServiceDefinition } from '#libs/service-host';
import { logsMigrations } from './migrations/index.js';
import { runLogsProjection } from './runlog/read-models/run-logs.projection.js';

export const logsService: ServiceDefinition = {
  name: 'logs',
  migrations: [logsMigrations],
  projections: [runLogsProjection],
};
