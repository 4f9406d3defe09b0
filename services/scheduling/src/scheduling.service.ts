import type { ServiceDefinition } from '#libs/service-host';
import { jobRunsProjection } from './job/read-models/job-runs.projection.js';
import { registerJobEvents } from './job/job.events.js';
import { jobsProjection } from './job/read-models/jobs.projection.js';
import { backfillsProjection } from './job/read-models/backfills.projection.js';
import { latestVersionsProjection } from './job/read-models/latest-versions.projection.js';
import { schedulingMigrations } from './migrations/index.js';

export const schedulingService: ServiceDefinition = {
  name: 'scheduling',
  migrations: [schedulingMigrations],
  register: (registry) => void registerJobEvents(registry),
  projections: [jobsProjection, jobRunsProjection, latestVersionsProjection, backfillsProjection],
};
