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

export const userEvents = [UserRegistered, TokenIssued, TokenRevoked, UserDisabled, UserEnabled] as const;
export type UserEvent = EventOf<typeof userEvents>;

/**
 * The claim of a normalised email by one user: aggregate `evt._.email.<sha256(email)>`, written with
 * expected last sequence 0 before the user is registered, so two users never share an email. It
 * carries what the registration needs, so anyone who finds a claim without its user can finish it.
 */
export const EmailClaimed = defineEvent(
  'EmailClaimed',
  z.object({
    email: z.string().email().max(320),
    userId: uuid,
    name: z.string().max(200),
    admin: z.boolean(),
  }),
);
export const emailEvents = [EmailClaimed] as const;
export type EmailEvent = EventOf<typeof emailEvents>;

/**
 * The instance's first start, decided once on the event store (`evt._.instance.default`): which user
 * is the first admin and which workspace the default one. A lost `instance.json` is rebuilt from it.
 */
export const InstanceBootstrapped = defineEvent(
  'InstanceBootstrapped',
  z.object({ adminUserId: uuid, adminEmail: z.string().email(), defaultWorkspaceId: uuid }),
);
export const instanceEvents = [InstanceBootstrapped] as const;
export type InstanceEvent = EventOf<typeof instanceEvents>;
