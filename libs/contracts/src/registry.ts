import { EventRegistry } from '#libs/eventstore';
import { deploymentEvents } from './deployment.events.js';
import { configurationEvents, keyringEvents } from './configuration.events.js';
import { jobEvents } from './job.events.js';
import { runEvents } from './run.events.js';
import { runLogEvents } from './runlog.events.js';
import { emailEvents, instanceEvents, userEvents } from './user.events.js';
import { workspaceEvents } from './workspace.events.js';

/** Registry of every integration event; services register their private events on top. */
export function integrationRegistry(): EventRegistry {
  return new EventRegistry().register(
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
