import { z } from 'zod';
import { defineEvent, type EventOf } from '#libs/events';

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
    /** The token that minted this one (its expiry bounds this one's); absent for tokens minted by the system. */
    parentTokenId: z.string().optional(),
  }),
);
export const TokenRevoked = defineEvent('TokenRevoked', z.object({ tokenId: z.string() }));
/** A disabled user's tokens stop working; the user, their tokens and memberships stay on record. */
export const UserDisabled = defineEvent('UserDisabled', z.object({ reason: z.string().max(500).optional() }));
export const UserEnabled = defineEvent('UserEnabled', z.object({}));
/**
 * The user's dashboard password was set or changed (by themselves or an administrator). Only the
 * fact and its time: the password hash is a secret and never leaves the gateway's own table.
 */
export const UserPasswordChanged = defineEvent(
  'UserPasswordChanged',
  z.object({ userId: uuid, at: z.string().datetime(), by: z.enum(['self', 'admin']) }),
);

export const userEvents = [
  UserRegistered,
  TokenIssued,
  TokenRevoked,
  UserDisabled,
  UserEnabled,
  UserPasswordChanged,
] as const;
export type UserEvent = EventOf<typeof userEvents>;
