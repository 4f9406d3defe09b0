import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';

/**
 * AES-256-GCM with a random 12-byte IV. A sealed value is one buffer:
 *   0x01 (format version) | iv (12 bytes) | tag (16 bytes) | ciphertext
 * The additional authenticated data (AAD) is not stored: the caller rebuilds it from where the
 * value belongs (workspace, file path, version…), so a ciphertext moved elsewhere fails to open.
 */
export const SEALED_FORMAT = 1;
const IV_BYTES = 12;
const TAG_BYTES = 16;
const HEADER_BYTES = 1 + IV_BYTES + TAG_BYTES;
export const KEY_BYTES = 32;

/** A value that does not open: wrong key, wrong AAD, or tampered bytes. Never carries the content. */
export class DecryptionError extends Error {
  constructor(message = 'cannot decrypt: wrong key, wrong context or tampered data') {
    super(message);
    this.name = 'DecryptionError';
  }
}

function checkKey(key: Uint8Array): void {
  if (key.length !== KEY_BYTES)
    throw new Error(`AES-256-GCM needs a ${KEY_BYTES}-byte key, got ${key.length} bytes`);
}

const asBuffer = (aad: string | Uint8Array) =>
  typeof aad === 'string' ? Buffer.from(aad, 'utf8') : Buffer.from(aad);

/** Encrypts `plaintext` under `key`, binding it to `aad`. */
export function seal(key: Uint8Array, plaintext: Uint8Array, aad: string | Uint8Array): Buffer {
  checkKey(key);
  const iv = randomBytes(IV_BYTES);
  const cipher = createCipheriv('aes-256-gcm', key, iv, { authTagLength: TAG_BYTES });
  cipher.setAAD(asBuffer(aad));
  const ct = Buffer.concat([cipher.update(plaintext), cipher.final()]);
  return Buffer.concat([Buffer.from([SEALED_FORMAT]), iv, cipher.getAuthTag(), ct]);
}

/** Decrypts a value made by `seal` with the same key and AAD; throws DecryptionError otherwise. */
export function open(key: Uint8Array, sealed: Uint8Array, aad: string | Uint8Array): Buffer {
  checkKey(key);
  const buf = Buffer.from(sealed.buffer, sealed.byteOffset, sealed.byteLength);
  if (buf.length < HEADER_BYTES || buf[0] !== SEALED_FORMAT)
    throw new DecryptionError('cannot decrypt: not a sealed value of a known format');
  const iv = buf.subarray(1, 1 + IV_BYTES);
  const tag = buf.subarray(1 + IV_BYTES, HEADER_BYTES);
  const decipher = createDecipheriv('aes-256-gcm', key, iv, { authTagLength: TAG_BYTES });
  decipher.setAAD(asBuffer(aad));
  decipher.setAuthTag(tag);
  try {
    return Buffer.concat([decipher.update(buf.subarray(HEADER_BYTES)), decipher.final()]);
  } catch {
    throw new DecryptionError();
  }
}

/** True when the bytes look like a value sealed by this module (used by tests and audits). */
export function isSealed(value: Uint8Array): boolean {
  return value.length >= HEADER_BYTES && value[0] === SEALED_FORMAT;
}
