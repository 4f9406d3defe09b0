import type { ServiceDefinition } from '#libs/service-host';
import { gatewayMigrations } from './migrations/index.js';
import { usersProjection } from './user/read-models/users.projection.js';
import { workspacesProjection } from './workspace/read-models/workspaces.projection.js';

export const gatewayService: ServiceDefinition = {
  name: 'gateway',
  migrations: [gatewayMigrations],
  projections: [workspacesProjection, usersProjection],
};
