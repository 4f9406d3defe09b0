import { ConflictError, DomainError, NotFoundError, type Decider } from '#libs/eventstore';
import type { UserEvent } from '#libs/contracts';

export type UserCommand =
  | { type: 'RegisterUser'; userId: string; email: string; name: string; admin?: boolean }
  | { type: 'IssueToken'; tokenId: string; name: string; hash: string; expiresAt: string | null; now: string }
  | { type: 'RevokeToken'; tokenId: string };

export interface UserState {
  exists: boolean;
  tokens: ReadonlyMap<string, { revoked: boolean }>;
}

const initialState = (): UserState => ({ exists: false, tokens: new Map() });

function evolve(state: UserState, event: UserEvent): UserState {
  switch (event.type) {
    case 'UserRegistered':
      return { ...state, exists: true };
    case 'TokenIssued':
      return { ...state, tokens: new Map(state.tokens).set(event.data.tokenId, { revoked: false }) };
    case 'TokenRevoked':
      return { ...state, tokens: new Map(state.tokens).set(event.data.tokenId, { revoked: true }) };
  }
}

function decide(command: UserCommand, state: UserState): UserEvent[] {
  switch (command.type) {
    case 'RegisterUser':
      if (state.exists) return [];
      return [
        {
          type: 'UserRegistered',
          data: {
            userId: command.userId,
            email: command.email.trim().toLowerCase(),
            name: command.name,
            admin: command.admin ?? false,
          },
        },
      ];
    case 'IssueToken':
      if (!state.exists) throw new NotFoundError('user not found');
      if (state.tokens.has(command.tokenId))
        throw new ConflictError(`token ${command.tokenId} already exists`);
      if (command.expiresAt !== null && Date.parse(command.expiresAt) <= Date.parse(command.now)) {
        throw new DomainError('token expiry must be in the future');
      }
      return [
        {
          type: 'TokenIssued',
          data: {
            tokenId: command.tokenId,
            name: command.name,
            hash: command.hash,
            expiresAt: command.expiresAt,
          },
        },
      ];
    case 'RevokeToken': {
      const token = state.tokens.get(command.tokenId);
      if (!token) throw new NotFoundError(`token ${command.tokenId} not found`);
      return token.revoked ? [] : [{ type: 'TokenRevoked', data: { tokenId: command.tokenId } }];
    }
  }
}

export const userDecider: Decider<UserState, UserCommand, UserEvent> = { initialState, evolve, decide };
