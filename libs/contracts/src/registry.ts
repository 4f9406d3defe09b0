import { EventRegistry } from '#libs/eventstore';
import { userEvents } from './user.events.js';
import { workspaceEvents } from './workspace.events.js';

/** Registry of every integration event; services register their private events on top. */
export function integrationRegistry(): EventRegistry {
  return new EventRegistry().register(...workspaceEvents, ...userEvents);
}
