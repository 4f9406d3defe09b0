import type { ServiceDefinition } from '#libs/service-host';
import { jobRunsProjection } from './job/read-models/job-runs.projection.js';
import { jobsProjection } from './job/read-models/jobs.projection.js';
import { schedulingMigrations } from './migrations/index.js';

export const schedulingService: ServiceDefinition = {
  name: 'scheduling',
  migrations: [schedulingMigrations],
  projections: [jobsProjection, jobRunsProjection],
};
