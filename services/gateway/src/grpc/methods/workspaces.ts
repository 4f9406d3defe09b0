/** gRPC methods of the workspace slice: members and their roles. */

import { parseInput } from '#libs/http';
import { memberBody, roleBody } from '../../workspace/workspace.controller.js';
import { owner, read, required, str, who, workspaceOf, type Method } from './common.js';

export const workspacesMethods: Record<string, Method> = {
  ListMembers: {
    auth: read,
    handle: async (s, r) => ({ items: await s.workspaces.members(workspaceOf(r)) }),
  },
  AddMember: {
    auth: owner,
    handle: (s, r, c) =>
      s.workspaces.addMember(
        who(c),
        workspaceOf(r),
        parseInput(memberBody, { email: str(r, 'email'), role: str(r, 'role') || 'member' }, 'request'),
      ),
  },
  RemoveMember: {
    auth: { workspace: 'owner', selfNeeds: 'read' },
    handle: (s, r, c) => s.workspaces.removeMember(who(c), workspaceOf(r), required(r, 'user')),
  },
  ChangeMemberRole: {
    auth: owner,
    handle: (s, r, c) =>
      s.workspaces.changeRole(
        who(c),
        workspaceOf(r),
        required(r, 'user'),
        parseInput(roleBody, { role: str(r, 'role') }, 'request').role,
      ),
  },
};
