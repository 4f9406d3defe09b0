import type { Decider } from '#libs/eventstore';
import type { InstanceEvent } from './instance.events.js';

export interface InstanceIdentity {
  adminUserId: string;
  adminEmail: string;
  defaultWorkspaceId: string;
}

export type InstanceCommand = { type: 'BootstrapInstance' } & InstanceIdentity;

export interface InstanceState {
  /** What the first start decided; null before it. */
  bootstrapped: InstanceIdentity | null;
}

const initialState = (): InstanceState => ({ bootstrapped: null });

function evolve(state: InstanceState, event: InstanceEvent): InstanceState {
  switch (event.type) {
    case 'InstanceBootstrapped':
      return state.bootstrapped ? state : { bootstrapped: { ...event.data } };
  }
}

/** The first start is decided once: a later (or concurrent, losing) bootstrap keeps what was decided. */
function decide(command: InstanceCommand, state: InstanceState): InstanceEvent[] {
  switch (command.type) {
    case 'BootstrapInstance':
      if (state.bootstrapped) return [];
      return [
        {
          type: 'InstanceBootstrapped',
          data: {
            adminUserId: command.adminUserId,
            adminEmail: command.adminEmail,
            defaultWorkspaceId: command.defaultWorkspaceId,
          },
        },
      ];
    default: {
      const unknown: never = command.type;
      throw new Error(`unknown command ${String(unknown)}`);
    }
  }
}

export const instanceDecider: Decider<InstanceState, InstanceCommand, InstanceEvent> = {
  initialState,
  evolve,
  decide,
};
