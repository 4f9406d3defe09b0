import { DataKeyCreated } from '#libs/contracts';
import type { EventOf } from '#libs/eventstore';

/**
 * The events of the `keyring` aggregate (one per workspace). DataKeyCreated stays an integration
 * event (libs/contracts): the execution worker reads the keyring to unwrap the data key of the
 * secrets it materializes for a run.
 */
export const keyringEvents = [DataKeyCreated] as const;
export type KeyringEvent = EventOf<typeof keyringEvents>;
