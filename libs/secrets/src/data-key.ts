import { randomBytes, randomUUID } from 'node:crypto';
import { KEY_BYTES, open, seal } from './aead.js';
import { MasterKeyError, type MasterKey } from './master-key.js';

/**
 * A workspace's data key as it may be stored (in an event): wrapped (AES-256-GCM) by the master key,
 * bound to its workspace and key id. Holds no usable key material without the master key.
 */
export interface WrappedDataKey {
  keyId: string;
  /** base64 of the sealed 32-byte data key. */
  wrappedKey: string;
  /** Id (fingerprint) of the master key that wrapped it. */
  kek: string;
  alg: 'A256GCM';
}

const dataKeyAad = (workspaceId: string, keyId: string) =>
  JSON.stringify(['runway:data-key:v1', workspaceId, keyId]);

/** A fresh random data key for a workspace, and its wrapped form. */
export function createDataKey(
  master: MasterKey,
  workspaceId: string,
  keyId: string = randomUUID(),
): { dataKey: Buffer; wrapped: WrappedDataKey } {
  const dataKey = randomBytes(KEY_BYTES);
  const wrappedKey = seal(master.key, dataKey, dataKeyAad(workspaceId, keyId)).toString('base64');
  return { dataKey, wrapped: { keyId, wrappedKey, kek: master.id, alg: 'A256GCM' } };
}

/** Unwraps a workspace's data key; a different master key or a key of another workspace fails. */
export function unwrapDataKey(master: MasterKey, workspaceId: string, wrapped: WrappedDataKey): Buffer {
  if (wrapped.kek !== master.id) {
    throw new MasterKeyError(
      `the data key of workspace ${workspaceId} was wrapped by master key ${wrapped.kek}, but this server has master key ${master.id}: ` +
        'start it with the RUNWAY_MASTER_KEY (or master.key file) used when the secrets were stored',
    );
  }
  return open(master.key, Buffer.from(wrapped.wrappedKey, 'base64'), dataKeyAad(workspaceId, wrapped.keyId));
}

/** Where an encrypted file belongs; all of it is authenticated, none of it is secret. */
export interface FileContext {
  workspaceId: string;
  /** The owner of the file, e.g. a configuration id. */
  ownerId: string;
  version: number;
  path: string;
}

export const fileAad = (c: FileContext) =>
  JSON.stringify(['runway:file:v1', c.workspaceId, c.ownerId, c.version, c.path]);

export function encryptFile(dataKey: Uint8Array, content: Uint8Array, ctx: FileContext): Buffer {
  return seal(dataKey, content, fileAad(ctx));
}

export function decryptFile(dataKey: Uint8Array, sealed: Uint8Array, ctx: FileContext): Buffer {
  return open(dataKey, sealed, fileAad(ctx));
}
