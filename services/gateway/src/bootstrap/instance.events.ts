import { z } from 'zod';
import { defineEvent, type EventOf } from '#libs/events';

/**
 * The instance's first start, decided once on the event store (`evt._.instance.default`): which user
 * is the first admin and which workspace the default one. A lost `instance.json` is rebuilt from it.
 * Private to the gateway: nobody else consumes it.
 */
export const InstanceBootstrapped = defineEvent(
  'InstanceBootstrapped',
  z.object({
    adminUserId: z.string().uuid(),
    adminEmail: z.string().email(),
    defaultWorkspaceId: z.string().uuid(),
  }),
);
export const instanceEvents = [InstanceBootstrapped] as const;
export type InstanceEvent = EventOf<typeof instanceEvents>;
