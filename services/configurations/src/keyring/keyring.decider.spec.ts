import { describe, it } from 'node:test';
import { deciderSpec } from '#libs/testing';
import type { KeyringEvent } from './keyring.events.js';
import { keyringDecider } from './keyring.decider.js';

const k1 = { keyId: 'k1', wrappedKey: 'AQID', kek: '0123456789abcdef', alg: 'A256GCM' as const };
const k2 = { ...k1, keyId: 'k2' };
const spec = deciderSpec(keyringDecider);

describe('keyring decider', () => {
  it('creates the workspace data key once; a second (racing) creation keeps the first', () => {
    const created: KeyringEvent = { type: 'DataKeyCreated', data: k1 };
    spec.given([]).when({ type: 'CreateDataKey', key: k1 }).then([created]);
    spec.given([created]).when({ type: 'CreateDataKey', key: k2 }).thenNothing();
  });
});
