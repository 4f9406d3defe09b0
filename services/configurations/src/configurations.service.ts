import type { ServiceDefinition } from '#libs/service-host';
import { configurationsProjection } from './configuration/read-models/configurations.projection.js';
import { configurationsMigrations } from './migrations/index.js';
import { moveConfigurationBlobs } from './migrations/move-blobs.js';

export const configurationsService: ServiceDefinition = {
  name: 'configurations',
  migrations: [configurationsMigrations],
  projections: [configurationsProjection],
  // Installs from before 0002 keep their configuration files: moved to JetStream, then dropped.
  beforeMigrations: async ({ db, nats, config, log }) => {
    await moveConfigurationBlobs(db, nats, config.events.subjectPrefix, log, config.nats.replicas);
  },
};
