import type { ServiceDefinition } from '#libs/service-host';
import { instanceEvents } from './bootstrap/instance.events.js';
import { emailEvents } from './user/email-claim.events.js';
import { gatewayMigrations } from './migrations/index.js';
import { usersProjection } from './user/read-models/users.projection.js';
import { workspacesProjection } from './workspace/read-models/workspaces.projection.js';

export const gatewayService: ServiceDefinition = {
  name: 'gateway',
  migrations: [gatewayMigrations],
  projections: [workspacesProjection, usersProjection],
  /** The gateway's private events: email claims and the instance's first start. */
  register: (registry) => registry.register(...emailEvents, ...instanceEvents),
};
