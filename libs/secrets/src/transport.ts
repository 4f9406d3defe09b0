import { hkdfSync } from 'node:crypto';
import { KEY_BYTES, open, seal } from './aead.js';
import type { MasterKey } from './master-key.js';

/**
 * Keys for data in transit between Runway's own services, derived from the master key with
 * HKDF-SHA256 (one key per purpose, never the master key itself). Every process that holds the
 * master key (gateway, configurations service, workers) derives the same key; a client of the bus
 * without the master key reads nothing. See docs/durability.md ("Secrets on the bus").
 */
export type TransportPurpose = 'configuration-upload';

export function transportKey(master: MasterKey, purpose: TransportPurpose): Buffer {
  return Buffer.from(
    hkdfSync('sha256', master.key, Buffer.alloc(0), `runway:transport:v1:${purpose}`, KEY_BYTES),
  );
}

/** What a sealed upload belongs to: it opens only for the same workspace and command. */
export interface UploadContext {
  workspaceId: string;
  commandId: string;
}

const uploadAad = (c: UploadContext) => JSON.stringify(['runway:upload:v1', c.workspaceId, c.commandId]);

export function sealUpload(key: Uint8Array, plaintext: Uint8Array, ctx: UploadContext): Buffer {
  return seal(key, plaintext, uploadAad(ctx));
}

/** Throws DecryptionError for another key, workspace or command, or tampered bytes. */
export function openUpload(key: Uint8Array, sealed: Uint8Array, ctx: UploadContext): Buffer {
  return open(key, sealed, uploadAad(ctx));
}
