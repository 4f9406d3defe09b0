import type { Decider } from '#libs/eventstore';
import type { KeyringEvent } from '#libs/contracts';
import type { WrappedDataKey } from '#libs/secrets';

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
  }
}

function decide(command: KeyringCommand, state: KeyringState): KeyringEvent[] {
  switch (command.type) {
    case 'CreateDataKey':
      // Two first uploads racing: the second finds the first one's key and keeps it.
      return state.active ? [] : [{ type: 'DataKeyCreated', data: command.key }];
  }
}

export const keyringDecider: Decider<KeyringState, KeyringCommand, KeyringEvent> = {
  initialState,
  evolve,
  decide,
};
