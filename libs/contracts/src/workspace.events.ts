import { z } from 'zod';
import { defineEvent, type EventOf } from '#libs/events';
import { roleSchema } from './enums.js';

const uuid = z.string().uuid();

export const WorkspaceCreated = defineEvent(
  'WorkspaceCreated',
  z.object({ workspaceId: uuid, name: z.string().min(1).max(200), ownerId: uuid }),
);
export const WorkspaceRenamed = defineEvent(
  'WorkspaceRenamed',
  z.object({ name: z.string().min(1).max(200) }),
);
export const MemberAdded = defineEvent('MemberAdded', z.object({ userId: uuid, role: roleSchema }));
export const MemberRoleChanged = defineEvent(
  'MemberRoleChanged',
  z.object({ userId: uuid, role: roleSchema }),
);
export const MemberRemoved = defineEvent('MemberRemoved', z.object({ userId: uuid }));

export const workspaceEvents = [
  WorkspaceCreated,
  WorkspaceRenamed,
  MemberAdded,
  MemberRoleChanged,
  MemberRemoved,
] as const;
export type WorkspaceEvent = EventOf<typeof workspaceEvents>;
