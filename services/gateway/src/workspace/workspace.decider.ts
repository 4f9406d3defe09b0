import { ConflictError, DomainError, NotFoundError, type Decider } from '#libs/eventstore';
import type { Role, WorkspaceEvent } from '#libs/contracts';

export type WorkspaceCommand =
  | { type: 'CreateWorkspace'; workspaceId: string; name: string; ownerId: string }
  | { type: 'RenameWorkspace'; name: string }
  | { type: 'AddMember'; userId: string; role: Role }
  | { type: 'RemoveMember'; userId: string };

export interface WorkspaceState {
  exists: boolean;
  name: string;
  members: ReadonlyMap<string, Role>;
}

const initialState = (): WorkspaceState => ({ exists: false, name: '', members: new Map() });

function evolve(state: WorkspaceState, event: WorkspaceEvent): WorkspaceState {
  switch (event.type) {
    case 'WorkspaceCreated':
      return { exists: true, name: event.data.name, members: new Map([[event.data.ownerId, 'owner']]) };
    case 'WorkspaceRenamed':
      return { ...state, name: event.data.name };
    case 'MemberAdded':
    case 'MemberRoleChanged':
      return { ...state, members: new Map(state.members).set(event.data.userId, event.data.role) };
    case 'MemberRemoved': {
      const members = new Map(state.members);
      members.delete(event.data.userId);
      return { ...state, members };
    }
  }
}

function cleanName(name: string): string {
  const n = name.trim();
  if (n.length === 0 || n.length > 200) throw new DomainError('workspace name must be 1 to 200 characters');
  return n;
}

type Command<T extends WorkspaceCommand['type']> = Extract<WorkspaceCommand, { type: T }>;

function createWorkspace(command: Command<'CreateWorkspace'>, state: WorkspaceState): WorkspaceEvent[] {
  if (state.exists) throw new ConflictError(`workspace ${command.workspaceId} already exists`);
  return [
    {
      type: 'WorkspaceCreated',
      data: { workspaceId: command.workspaceId, name: cleanName(command.name), ownerId: command.ownerId },
    },
  ];
}

function renameWorkspace(command: Command<'RenameWorkspace'>, state: WorkspaceState): WorkspaceEvent[] {
  const name = cleanName(command.name);
  return name === state.name ? [] : [{ type: 'WorkspaceRenamed', data: { name } }];
}

function addMember(command: Command<'AddMember'>, state: WorkspaceState): WorkspaceEvent[] {
  const current = state.members.get(command.userId);
  if (current === command.role) return [];
  if (current === 'owner' && ownerCount(state) === 1) {
    throw new ConflictError('cannot change the role of the last owner');
  }
  return current
    ? [{ type: 'MemberRoleChanged', data: { userId: command.userId, role: command.role } }]
    : [{ type: 'MemberAdded', data: { userId: command.userId, role: command.role } }];
}

function removeMember(command: Command<'RemoveMember'>, state: WorkspaceState): WorkspaceEvent[] {
  const current = state.members.get(command.userId);
  if (!current) throw new NotFoundError(`user ${command.userId} is not a member`);
  if (current === 'owner' && ownerCount(state) === 1) throw new ConflictError('cannot remove the last owner');
  return [{ type: 'MemberRemoved', data: { userId: command.userId } }];
}

/** One function per command; every command but CreateWorkspace needs an existing workspace. */
function decide(command: WorkspaceCommand, state: WorkspaceState): WorkspaceEvent[] {
  if (command.type !== 'CreateWorkspace' && !state.exists) throw new NotFoundError('workspace not found');
  switch (command.type) {
    case 'CreateWorkspace':
      return createWorkspace(command, state);
    case 'RenameWorkspace':
      return renameWorkspace(command, state);
    case 'AddMember':
      return addMember(command, state);
    case 'RemoveMember':
      return removeMember(command, state);
    default: {
      const unknown: never = command;
      throw new Error(`unknown command ${JSON.stringify(unknown)}`);
    }
  }
}

function ownerCount(state: WorkspaceState): number {
  return [...state.members.values()].filter((r) => r === 'owner').length;
}

export const workspaceDecider: Decider<WorkspaceState, WorkspaceCommand, WorkspaceEvent> = {
  initialState,
  evolve,
  decide,
};
