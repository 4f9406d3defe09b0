import { z } from 'zod';
import { defineEvent, type EventOf } from '#libs/eventstore';

const uuid = z.string().uuid();

export const UserRegistered = defineEvent(
  'UserRegistered',
  z.object({
    userId: uuid,
    email: z.string().email().max(320),
    name: z.string().max(200),
    /** Instance administrator (the first admin); may add users and approve logins for them. */
    admin: z.boolean().default(false),
  }),
);
/** Only the token's SHA-256 hash is ever stored; the secret is shown once to its owner. */
export const TokenIssued = defineEvent(
  'TokenIssued',
  z.object({
    tokenId: z.string().regex(/^[a-z0-9]{8,40}$/),
    name: z.string().min(1).max(200),
    hash: z.string().regex(/^[0-9a-f]{64}$/),
    expiresAt: z.string().datetime().nullable(),
  }),
);
export const TokenRevoked = defineEvent('TokenRevoked', z.object({ tokenId: z.string() }));

export const userEvents = [UserRegistered, TokenIssued, TokenRevoked] as const;
export type UserEvent = EventOf<typeof userEvents>;
