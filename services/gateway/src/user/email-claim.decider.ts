import { ConflictError, type Decider } from '#libs/eventstore';
import type { EmailEvent } from './email-claim.events.js';

/** The one form of an email the write model compares: trimmed, lower case. */
export function normaliseEmail(email: string): string {
  return email.trim().toLowerCase();
}

export type EmailClaimCommand = {
  type: 'ClaimEmail';
  email: string;
  userId: string;
  name: string;
  admin: boolean;
};

export interface EmailClaim {
  email: string;
  userId: string;
  name: string;
  admin: boolean;
}

export interface EmailClaimState {
  claim: EmailClaim | null;
}

const initialState = (): EmailClaimState => ({ claim: null });

function evolve(state: EmailClaimState, event: EmailEvent): EmailClaimState {
  switch (event.type) {
    case 'EmailClaimed':
      // The first claim stands (a second one can only come from a store written without this check).
      return state.claim ? state : { claim: { ...event.data } };
  }
}

function decide(command: EmailClaimCommand, state: EmailClaimState): EmailEvent[] {
  switch (command.type) {
    case 'ClaimEmail': {
      const email = normaliseEmail(command.email);
      if (state.claim?.userId === command.userId) return [];
      if (state.claim) throw new ConflictError(`a user with email ${email} already exists`);
      return [
        {
          type: 'EmailClaimed',
          data: { email, userId: command.userId, name: command.name, admin: command.admin },
        },
      ];
    }
    default: {
      const unknown: never = command.type;
      throw new Error(`unknown command ${String(unknown)}`);
    }
  }
}

export const emailClaimDecider: Decider<EmailClaimState, EmailClaimCommand, EmailEvent> = {
  initialState,
  evolve,
  decide,
};
