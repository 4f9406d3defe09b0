import { describe, it } from 'node:test';
import { ConflictError } from '#libs/eventstore';
import { deciderSpec } from '#libs/testing';
import type { EmailEvent } from './email-claim.events.js';
import { emailClaimDecider } from './email-claim.decider.js';

const alice = '0d5c2a7e-2b4f-4c3a-8e1d-5f6a7b8c9d01';
const bob = '1e6d3b8f-3c5a-4d4b-9f2e-6a7b8c9d0e12';
const claimed: EmailEvent = {
  type: 'EmailClaimed',
  data: { email: 'a@b.io', userId: alice, name: 'A', admin: false },
};
const spec = deciderSpec(emailClaimDecider);

describe('email claim decider', () => {
  it('claims a free email for a user, normalised', () => {
    spec
      .given([])
      .when({ type: 'ClaimEmail', email: ' A@B.io ', userId: alice, name: 'A', admin: false })
      .then([claimed]);
  });
  it('is idempotent for the same user', () => {
    spec
      .given([claimed])
      .when({ type: 'ClaimEmail', email: 'a@b.io', userId: alice, name: 'A', admin: false })
      .thenNothing();
  });
  it('refuses an email claimed by another user with a conflict', () => {
    spec
      .given([claimed])
      .when({ type: 'ClaimEmail', email: 'A@b.io', userId: bob, name: 'B', admin: false })
      .thenThrows(ConflictError, /already exists/);
  });
});
