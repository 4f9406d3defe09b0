import { z } from 'zod';
import { defineEvent, type EventOf } from '#libs/events';

/**
 * The claim of a normalised email by one user: aggregate `evt._.email.<sha256(email)>`, written with
 * expected last sequence 0 before the user is registered, so two users never share an email. It
 * carries what the registration needs, so anyone who finds a claim without its user can finish it.
 * Private to the gateway: nobody else consumes it.
 */
export const EmailClaimed = defineEvent(
  'EmailClaimed',
  z.object({
    email: z.string().email().max(320),
    userId: z.string().uuid(),
    name: z.string().max(200),
    admin: z.boolean(),
  }),
);
export const emailEvents = [EmailClaimed] as const;
export type EmailEvent = EventOf<typeof emailEvents>;
