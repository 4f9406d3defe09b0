import { describe, it } from 'node:test';
import { ConflictError, DomainError, NotFoundError } from '#libs/eventstore';
import { deciderSpec } from '#libs/testing';
import type { UserEvent } from '#libs/contracts';
import { userDecider } from './user.decider.js';

const userId = '0d5c2a7e-2b4f-4c3a-8e1d-5f6a7b8c9d01';
const registered: UserEvent = {
  type: 'UserRegistered',
  data: { userId, email: 'a@b.io', name: 'A', admin: false },
};
const hash = 'a'.repeat(64);
const issued: UserEvent = {
  type: 'TokenIssued',
  data: { tokenId: 'tok12345', name: 'cli', hash, expiresAt: null },
};
const now = '2026-01-01T00:00:00.000Z';
const spec = deciderSpec(userDecider);

describe('user decider', () => {
  it('registers once, normalising the email', () => {
    spec.given([]).when({ type: 'RegisterUser', userId, email: ' A@B.io ', name: 'A' }).then([registered]);
    spec.given([registered]).when({ type: 'RegisterUser', userId, email: 'a@b.io', name: 'A' }).thenNothing();
  });
  it('issues a token storing only its hash', () => {
    spec
      .given([registered])
      .when({ type: 'IssueToken', tokenId: 'tok12345', name: 'cli', hash, expiresAt: null, now })
      .then([issued]);
  });
  it('refuses a token for an unknown user, a duplicate id, or an expiry in the past', () => {
    spec
      .given([])
      .when({ type: 'IssueToken', tokenId: 'tok12345', name: 'cli', hash, expiresAt: null, now })
      .thenThrows(NotFoundError);
    spec
      .given([registered, issued])
      .when({ type: 'IssueToken', tokenId: 'tok12345', name: 'x', hash, expiresAt: null, now })
      .thenThrows(ConflictError);
    spec
      .given([registered])
      .when({
        type: 'IssueToken',
        tokenId: 'tok99999',
        name: 'x',
        hash,
        expiresAt: '2025-01-01T00:00:00.000Z',
        now,
      })
      .thenThrows(DomainError, /future/);
  });
  it('revokes once', () => {
    spec
      .given([registered, issued])
      .when({ type: 'RevokeToken', tokenId: 'tok12345' })
      .then([{ type: 'TokenRevoked', data: { tokenId: 'tok12345' } }]);
    spec
      .given([registered, issued, { type: 'TokenRevoked', data: { tokenId: 'tok12345' } }])
      .when({ type: 'RevokeToken', tokenId: 'tok12345' })
      .thenNothing();
    spec.given([registered]).when({ type: 'RevokeToken', tokenId: 'nope1234' }).thenThrows(NotFoundError);
  });
});
