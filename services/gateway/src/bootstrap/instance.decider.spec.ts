import { describe, it } from 'node:test';
import { deciderSpec } from '#libs/testing';
import type { InstanceEvent } from './instance.events.js';
import { instanceDecider } from './instance.decider.js';

const first = {
  adminUserId: '0d5c2a7e-2b4f-4c3a-8e1d-5f6a7b8c9d01',
  adminEmail: 'admin@runway.local',
  defaultWorkspaceId: '6b1f5c1e-1f7e-4a4b-9a55-3c2f1d0e9a11',
};
const bootstrapped: InstanceEvent = { type: 'InstanceBootstrapped', data: first };
const spec = deciderSpec(instanceDecider);

describe('instance decider', () => {
  it('records the first start', () => {
    spec
      .given([])
      .when({ type: 'BootstrapInstance', ...first })
      .then([bootstrapped]);
  });
  it('keeps the first decision on any later start, whatever ids it brings', () => {
    spec
      .given([bootstrapped])
      .when({
        type: 'BootstrapInstance',
        adminUserId: '1e6d3b8f-3c5a-4d4b-9f2e-6a7b8c9d0e12',
        adminEmail: 'admin@runway.local',
        defaultWorkspaceId: '2e6d3b8f-3c5a-4d4b-9f2e-6a7b8c9d0e12',
      })
      .thenNothing();
  });
});
