import { describe, it } from 'node:test';
import { ConflictError, DomainError, NotFoundError } from '#libs/eventstore';
import { deciderSpec } from '#libs/testing';
import type { WorkspaceEvent } from '#libs/contracts';
import { workspaceDecider } from './workspace.decider.js';

const ws = '6b1f5c1e-1f7e-4a4b-9a55-3c2f1d0e9a11';
const owner = '0d5c2a7e-2b4f-4c3a-8e1d-5f6a7b8c9d01';
const bob = '1e6d3b8f-3c5a-4d4b-9f2e-6a7b8c9d0e12';
const created: WorkspaceEvent = {
  type: 'WorkspaceCreated',
  data: { workspaceId: ws, name: 'Data', ownerId: owner },
};
const spec = deciderSpec(workspaceDecider);

describe('workspace decider', () => {
  it('creates a workspace with its owner', () => {
    spec
      .given([])
      .when({ type: 'CreateWorkspace', workspaceId: ws, name: ' Data ', ownerId: owner })
      .then([created]);
  });
  it('refuses to create twice', () => {
    spec
      .given([created])
      .when({ type: 'CreateWorkspace', workspaceId: ws, name: 'x', ownerId: owner })
      .thenThrows(ConflictError, /already exists/);
  });
  it('refuses an empty name', () => {
    spec
      .given([])
      .when({ type: 'CreateWorkspace', workspaceId: ws, name: '  ', ownerId: owner })
      .thenThrows(DomainError, /name/);
  });
  it('renames, and renaming to the same name is a no-op', () => {
    spec
      .given([created])
      .when({ type: 'RenameWorkspace', name: 'Lake' })
      .then([{ type: 'WorkspaceRenamed', data: { name: 'Lake' } }]);
    spec.given([created]).when({ type: 'RenameWorkspace', name: 'Data' }).thenNothing();
  });
  it('needs an existing workspace for every other command', () => {
    spec.given([]).when({ type: 'RenameWorkspace', name: 'x' }).thenThrows(NotFoundError);
    spec.given([]).when({ type: 'AddMember', userId: bob, role: 'viewer' }).thenThrows(NotFoundError);
  });
  it('adds a member, changes a role, and ignores a repeated add', () => {
    const added: WorkspaceEvent = { type: 'MemberAdded', data: { userId: bob, role: 'viewer' } };
    spec.given([created]).when({ type: 'AddMember', userId: bob, role: 'viewer' }).then([added]);
    spec.given([created, added]).when({ type: 'AddMember', userId: bob, role: 'viewer' }).thenNothing();
    spec
      .given([created, added])
      .when({ type: 'AddMember', userId: bob, role: 'member' })
      .then([{ type: 'MemberRoleChanged', data: { userId: bob, role: 'member' } }]);
  });
  it('removes a member but never the last owner', () => {
    const added: WorkspaceEvent = { type: 'MemberAdded', data: { userId: bob, role: 'member' } };
    spec
      .given([created, added])
      .when({ type: 'RemoveMember', userId: bob })
      .then([{ type: 'MemberRemoved', data: { userId: bob } }]);
    spec
      .given([created])
      .when({ type: 'RemoveMember', userId: owner })
      .thenThrows(ConflictError, /last owner/);
    spec
      .given([created])
      .when({ type: 'AddMember', userId: owner, role: 'viewer' })
      .thenThrows(ConflictError, /last owner/);
    spec
      .given([created])
      .when({ type: 'RemoveMember', userId: bob })
      .thenThrows(NotFoundError, /not a member/);
  });
});
