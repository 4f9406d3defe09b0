import { EventRegistry, type EventDefinition } from '#libs/events';
import { deploymentEvents } from './deployment.events.js';
import { configurationEvents, keyringEvents } from './configuration.events.js';
import { jobEvents } from './job.events.js';
import { runEvents } from './run.events.js';
import { runLogEvents } from './runlog.events.js';
import { emailEvents, instanceEvents, userEvents } from './user.events.js';
import { workspaceEvents } from './workspace.events.js';

/**
 * Registry of every integration event, with a service's private events (its `<aggregate>.events.ts`
 * lists) on top: `integrationRegistry(...jobEvents, ...jobPrivateEvents)`. A store decodes only the
 * types its registry knows; a consumer of another service's stream asks for the types it reads.
 */
export function integrationRegistry(...own: readonly EventDefinition[]): EventRegistry {
  return new EventRegistry()
    .register(...own)
    .register(
      ...deploymentEvents,
      ...workspaceEvents,
      ...userEvents,
      ...emailEvents,
      ...instanceEvents,
      ...configurationEvents,
      ...keyringEvents,
      ...jobEvents,
      ...runEvents,
      ...runLogEvents,
    );
}
