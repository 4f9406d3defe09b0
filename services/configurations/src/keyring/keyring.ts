import { randomUUID } from 'node:crypto';
import { AggregateTypes } from '#libs/contracts';
import { CommandHandler, type AggregateRef, type EventStore } from '#libs/eventstore';
import { createDataKey, unwrapDataKey, type MasterKey } from '#libs/secrets';
import { keyringDecider, type KeyringCommand, type KeyringState } from './keyring.decider.js';
import type { KeyringEvent } from './keyring.events.js';

/**
 * Per-workspace data keys: created on first need (random 32 bytes), stored only wrapped by the
 * master key (event DataKeyCreated on the workspace's `keyring` aggregate), unwrapped in memory
 * when a file is encrypted or decrypted. Usable outside Nest (the execution worker).
 */
export class Keyring {
  private readonly handler: CommandHandler<KeyringState, KeyringCommand, KeyringEvent>;

  constructor(
    store: EventStore,
    readonly master: MasterKey,
  ) {
    this.handler = new CommandHandler(store, keyringDecider);
  }

  private ref(workspaceId: string): AggregateRef {
    return { workspaceId, type: AggregateTypes.keyring, id: workspaceId };
  }

  async state(workspaceId: string): Promise<KeyringState> {
    return (await this.handler.load(this.ref(workspaceId))).state;
  }

  /** The key new files of the workspace are encrypted with; created (and stored wrapped) if missing. */
  async activeKey(workspaceId: string, actor: string): Promise<{ keyId: string; dataKey: Buffer }> {
    let state = await this.state(workspaceId);
    if (!state.active) {
      const { wrapped } = createDataKey(this.master, workspaceId);
      const r = await this.handler.handle(
        this.ref(workspaceId),
        { type: 'CreateDataKey', key: wrapped },
        { commandId: randomUUID(), actor },
      );
      state = r.state;
    }
    const active = state.active;
    if (!active) throw new Error(`workspace ${workspaceId} has no data key`);
    return { keyId: active.keyId, dataKey: unwrapDataKey(this.master, workspaceId, active) };
  }

  /** A data key by id, unwrapped; throws when the workspace has no such key. */
  async key(workspaceId: string, keyId: string): Promise<Buffer> {
    const wrapped = (await this.state(workspaceId)).keys.get(keyId);
    if (!wrapped) throw new Error(`workspace ${workspaceId} has no data key ${keyId}`);
    return unwrapDataKey(this.master, workspaceId, wrapped);
  }
}
