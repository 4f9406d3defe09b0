/** gRPC methods of the accounts slice: the caller (Me), API tokens, users (admin). */

import { parseInput } from '#libs/http';
import {
  allTokensQuery,
  createTokenBody,
  createUserBody,
  disableBody,
} from '../../account/tokens.controller.js';
import { admin, anyone, num, required, str, who, type Method } from './common.js';

export const accountsMethods: Record<string, Method> = {
  Me: { auth: anyone, handle: (s, _r, c) => s.accounts.me(who(c)) },
  ListTokens: { auth: anyone, handle: (s, _r, c) => s.accounts.myTokens(who(c)) },
  CreateToken: {
    auth: anyone,
    handle: (s, r, c) =>
      s.accounts.issueOwnToken(
        who(c),
        parseInput(
          createTokenBody,
          {
            name: str(r, 'name'),
            ...(num(r, 'expires_in_days') ? { expires_in_days: num(r, 'expires_in_days') } : {}),
          },
          'request',
        ),
      ),
  },
  RevokeToken: { auth: anyone, handle: (s, r, c) => s.accounts.revokeToken(who(c), str(r, 'id')) },
  ListAllTokens: {
    auth: admin,
    handle: (s, r, c) =>
      s.accounts.allTokens(
        who(c),
        parseInput(
          allTokensQuery,
          {
            ...(str(r, 'user') ? { user: str(r, 'user') } : {}),
            ...(str(r, 'state') ? { state: str(r, 'state') } : {}),
          },
          'request',
        ),
      ),
  },
  ListUsers: { auth: admin, handle: (s) => s.accounts.listUsers() },
  CreateUser: {
    auth: admin,
    handle: (s, r, c) =>
      s.accounts.createUser(
        who(c),
        parseInput(
          createUserBody,
          {
            email: str(r, 'email'),
            ...(str(r, 'name') ? { name: str(r, 'name') } : {}),
            ...(str(r, 'workspace_id') ? { workspace_id: str(r, 'workspace_id') } : {}),
            ...(str(r, 'role') ? { role: str(r, 'role') } : {}),
          },
          'request',
        ),
      ),
  },
  DisableUser: {
    auth: admin,
    handle: (s, r, c) =>
      s.accounts.disableUser(
        who(c),
        required(r, 'user'),
        parseInput(disableBody, str(r, 'reason') ? { reason: str(r, 'reason') } : {}, 'request').reason,
      ),
  },
  EnableUser: { auth: admin, handle: (s, r, c) => s.accounts.enableUser(who(c), required(r, 'user')) },
};
