import type { Decider } from '#libs/eventstore';
import type { WrappedDataKey } from '#libs/secrets';
import type { KeyringEvent } from './keyring.events.js';

/** The `keyring` aggregate: one per workspace (id = workspace id), holding its wrapped data key. */
export type KeyringCommand = { type: 'CreateDataKey'; key: WrappedDataKey };

export interface KeyringState {
  /** The key new files are encrypted with. */
  active: WrappedDataKey | undefined;
  /** Every key ever created, by id (old files keep their key). */
  keys: ReadonlyMap<string, WrappedDataKey>;
}

const initialState = (): KeyringState => ({ active: undefined, keys: new Map() });

function evolve(state: KeyringState, event: KeyringEvent): KeyringState {
  switch (event.type) {
    case 'DataKeyCreated':
      return { active: event.data, keys: new Map(state.keys).set(event.data.keyId, event.data) };
    default: {
      const unknown: never = event.type;
      throw new Error(`unknown event ${String(unknown)}`);
    }
  }
}

/** Two first uploads racing: the second finds the first one's key and keeps it. */
function createDataKey(command: KeyringCommand, state: KeyringState): KeyringEvent[] {
  return state.active ? [] : [{ type: 'DataKeyCreated', data: command.key }];
}

function decide(command: KeyringCommand, state: KeyringState): KeyringEvent[] {
  switch (command.type) {
    case 'CreateDataKey':
      return createDataKey(command, state);
    default: {
      const unknown: never = command.type;
      throw new Error(`unknown command ${String(unknown)}`);
    }
  }
}

export const keyringDecider: Decider<KeyringState, KeyringCommand, KeyringEvent> = {
  initialState,
  evolve,
  decide,
};
