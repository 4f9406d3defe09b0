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

describe('user decider: offboarding and token lineage', () => {
  const admin = '9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d';
  const disabled: UserEvent = { type: 'UserDisabled', data: {} };
  it('disables once, never oneself, and enables again', () => {
    spec
      .given([registered])
      .when({ type: 'DisableUser', userId, by: admin, reason: 'left' })
      .then([{ type: 'UserDisabled', data: { reason: 'left' } }]);
    spec.given([registered, disabled]).when({ type: 'DisableUser', userId, by: admin }).thenNothing();
    spec
      .given([registered])
      .when({ type: 'DisableUser', userId, by: userId })
      .thenThrows(ConflictError, /yourself/);
    spec.given([]).when({ type: 'DisableUser', userId, by: admin }).thenThrows(NotFoundError);
    spec
      .given([registered, disabled])
      .when({ type: 'EnableUser', userId })
      .then([{ type: 'UserEnabled', data: {} }]);
    spec.given([registered]).when({ type: 'EnableUser', userId }).thenNothing();
  });
  it('issues no token to a disabled user', () => {
    spec
      .given([registered, disabled])
      .when({ type: 'IssueToken', tokenId: 'tok12345', name: 'cli', hash, expiresAt: null, now })
      .thenThrows(ConflictError, /disabled/);
  });
  it('bounds a token minted by a token by its parent expiry', () => {
    const parentExpiry = '2026-02-01T00:00:00.000Z';
    const child = (expiresAt: string | null) => ({
      type: 'IssueToken' as const,
      tokenId: 'tok22222',
      name: 'child',
      hash,
      expiresAt,
      now,
      parent: { tokenId: 'tok12345', expiresAt: parentExpiry },
    });
    const issuedWith = (expiresAt: string | null): UserEvent => ({
      type: 'TokenIssued',
      data: { tokenId: 'tok22222', name: 'child', hash, expiresAt, parentTokenId: 'tok12345' },
    });
    // No expiry asked: the parent's; a later one: clamped; an earlier one: kept.
    spec
      .given([registered, issued])
      .when(child(null))
      .then([issuedWith(parentExpiry)]);
    spec
      .given([registered, issued])
      .when(child('2027-01-01T00:00:00.000Z'))
      .then([issuedWith(parentExpiry)]);
    spec
      .given([registered, issued])
      .when(child('2026-01-15T00:00:00.000Z'))
      .then([issuedWith('2026-01-15T00:00:00.000Z')]);
    // A parent without expiry leaves the request as it is.
    spec
      .given([registered, issued])
      .when({ ...child(null), parent: { tokenId: 'tok12345', expiresAt: null } })
      .then([issuedWith(null)]);
    // An already expired parent cannot mint.
    spec
      .given([registered, issued])
      .when({ ...child(null), parent: { tokenId: 'tok12345', expiresAt: '2025-12-31T00:00:00.000Z' } })
      .thenThrows(DomainError, /future/);
  });
  it('records a password change without any secret, for a registered user only', () => {
    const at = '2026-01-02T00:00:00.000Z';
    spec
      .given([registered])
      .when({ type: 'RecordPasswordChange', userId, at, by: 'admin' })
      .then([{ type: 'UserPasswordChanged', data: { userId, at, by: 'admin' } }]);
    spec.given([]).when({ type: 'RecordPasswordChange', userId, at, by: 'self' }).thenThrows(NotFoundError);
  });
});
