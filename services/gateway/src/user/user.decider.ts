import { ConflictError, DomainError, NotFoundError, type Decider } from '#libs/eventstore';
import type { UserEvent } from '#libs/contracts';
import { normaliseEmail } from './email-claim.decider.js';

/** The token a new token is minted with: the new one never outlives it. */
export interface ParentToken {
  tokenId: string;
  expiresAt: string | null;
}

export type UserCommand =
  | { type: 'RegisterUser'; userId: string; email: string; name: string; admin?: boolean }
  | {
      type: 'IssueToken';
      tokenId: string;
      name: string;
      hash: string;
      /** What the caller asked for (null: no expiry); bounded by the parent's expiry. */
      expiresAt: string | null;
      now: string;
      parent?: ParentToken;
    }
  | { type: 'RevokeToken'; tokenId: string }
  | { type: 'DisableUser'; userId: string; by: string; reason?: string }
  | { type: 'EnableUser'; userId: string }
  | { type: 'RecordPasswordChange'; userId: string; at: string; by: 'self' | 'admin' };

export interface UserState {
  exists: boolean;
  disabled: boolean;
  tokens: ReadonlyMap<string, { revoked: boolean }>;
}

const initialState = (): UserState => ({ exists: false, disabled: false, tokens: new Map() });

function evolve(state: UserState, event: UserEvent): UserState {
  switch (event.type) {
    case 'UserRegistered':
      return { ...state, exists: true };
    case 'TokenIssued':
      return { ...state, tokens: new Map(state.tokens).set(event.data.tokenId, { revoked: false }) };
    case 'TokenRevoked':
      return { ...state, tokens: new Map(state.tokens).set(event.data.tokenId, { revoked: true }) };
    case 'UserDisabled':
      return { ...state, disabled: true };
    case 'UserEnabled':
      return { ...state, disabled: false };
    case 'UserPasswordChanged':
      return state;
  }
}

/** The earlier of two expiries, null meaning never. */
function earlier(a: string | null, b: string | null): string | null {
  if (a === null) return b;
  if (b === null) return a;
  return Date.parse(a) <= Date.parse(b) ? a : b;
}

type Command<T extends UserCommand['type']> = Extract<UserCommand, { type: T }>;

function registerUser(command: Command<'RegisterUser'>, state: UserState): UserEvent[] {
  if (state.exists) return [];
  return [
    {
      type: 'UserRegistered',
      data: {
        userId: command.userId,
        email: normaliseEmail(command.email),
        name: command.name,
        admin: command.admin ?? false,
      },
    },
  ];
}

function issueToken(command: Command<'IssueToken'>, state: UserState): UserEvent[] {
  if (state.disabled) throw new ConflictError('the user is disabled: enable them first');
  if (state.tokens.has(command.tokenId)) throw new ConflictError(`token ${command.tokenId} already exists`);
  const expiresAt = command.parent ? earlier(command.expiresAt, command.parent.expiresAt) : command.expiresAt;
  if (expiresAt !== null && Date.parse(expiresAt) <= Date.parse(command.now)) {
    throw new DomainError('token expiry must be in the future');
  }
  return [
    {
      type: 'TokenIssued',
      data: {
        tokenId: command.tokenId,
        name: command.name,
        hash: command.hash,
        expiresAt,
        ...(command.parent ? { parentTokenId: command.parent.tokenId } : {}),
      },
    },
  ];
}

function revokeToken(command: Command<'RevokeToken'>, state: UserState): UserEvent[] {
  const token = state.tokens.get(command.tokenId);
  if (!token) throw new NotFoundError(`token ${command.tokenId} not found`);
  return token.revoked ? [] : [{ type: 'TokenRevoked', data: { tokenId: command.tokenId } }];
}

function disableUser(command: Command<'DisableUser'>, state: UserState): UserEvent[] {
  if (command.by === command.userId) throw new ConflictError('you cannot disable yourself');
  if (state.disabled) return [];
  return [{ type: 'UserDisabled', data: command.reason ? { reason: command.reason } : {} }];
}

function enableUser(_command: Command<'EnableUser'>, state: UserState): UserEvent[] {
  return state.disabled ? [{ type: 'UserEnabled', data: {} }] : [];
}

function recordPasswordChange(command: Command<'RecordPasswordChange'>): UserEvent[] {
  return [{ type: 'UserPasswordChanged', data: { userId: command.userId, at: command.at, by: command.by } }];
}

/** One function per command; every command but RegisterUser needs a registered user. */
function decide(command: UserCommand, state: UserState): UserEvent[] {
  if (command.type !== 'RegisterUser' && !state.exists) throw new NotFoundError('user not found');
  switch (command.type) {
    case 'RegisterUser':
      return registerUser(command, state);
    case 'IssueToken':
      return issueToken(command, state);
    case 'RevokeToken':
      return revokeToken(command, state);
    case 'DisableUser':
      return disableUser(command, state);
    case 'EnableUser':
      return enableUser(command, state);
    case 'RecordPasswordChange':
      return recordPasswordChange(command);
    default: {
      const unknown: never = command;
      throw new Error(`unknown command ${JSON.stringify(unknown)}`);
    }
  }
}

export const userDecider: Decider<UserState, UserCommand, UserEvent> = { initialState, evolve, decide };
