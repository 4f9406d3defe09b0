import { ConfigurationCreated } from '#libs/contracts';
import type { EventOf } from '#libs/eventstore';

/**
 * The events of the `configuration` aggregate (one per workspace). ConfigurationCreated is an
 * integration event (libs/contracts): scheduling folds it into its own read model and the
 * execution worker reads a version's files from it. The aggregate has no private events.
 */
export const configurationEvents = [ConfigurationCreated] as const;
export type ConfigurationEvent = EventOf<typeof configurationEvents>;
