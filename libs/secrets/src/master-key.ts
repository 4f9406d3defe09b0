import { createHmac, randomBytes } from 'node:crypto';
import {
  closeSync,
  existsSync,
  fchmodSync,
  fsyncSync,
  linkSync,
  mkdirSync,
  openSync,
  readFileSync,
  rmSync,
  statSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import { KEY_BYTES } from './aead.js';

/** The server's key-encryption key: wraps every workspace's data key. Never logged, never stored in events. */
export interface MasterKey {
  /** 32 bytes. */
  readonly key: Buffer;
  /** A short public fingerprint (HMAC of a constant): tells which master key wrapped a data key. */
  readonly id: string;
  readonly source: 'env' | 'file';
  /** The key file, when the key came from one. */
  readonly file?: string;
}

export const MASTER_KEY_FILE = 'master.key';

export class MasterKeyError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'MasterKeyError';
  }
}

/** Decodes a base64 (standard or URL-safe, padding optional) 32-byte key. */
export function parseMasterKey(text: string, what = 'RUNWAY_MASTER_KEY'): Buffer {
  const t = text.trim();
  if (!/^[A-Za-z0-9+/_-]+={0,2}$/.test(t))
    throw new MasterKeyError(`${what} must be a base64 encoded ${KEY_BYTES}-byte key`);
  const key = Buffer.from(t.replace(/-/g, '+').replace(/_/g, '/'), 'base64');
  if (key.length !== KEY_BYTES) {
    throw new MasterKeyError(
      `${what} must decode to exactly ${KEY_BYTES} bytes (got ${key.length}); create one with: openssl rand -base64 32`,
    );
  }
  return key;
}

export function masterKeyId(key: Uint8Array): string {
  return createHmac('sha256', key).update('runway master key id v1').digest('hex').slice(0, 16);
}

function fromBytes(key: Buffer, source: MasterKey['source'], file?: string): MasterKey {
  return Object.freeze({ key, id: masterKeyId(key), source, ...(file ? { file } : {}) });
}

function checkMode(file: string): void {
  const mode = statSync(file).mode & 0o777;
  if ((mode & 0o077) !== 0) {
    throw new MasterKeyError(
      `master key file ${file} has mode ${mode.toString(8).padStart(4, '0')}: it must be readable by its owner only (run: chmod 600 ${file})`,
    );
  }
}

/**
 * The master key: `RUNWAY_MASTER_KEY` (config.masterKey) when set, else `<dataDir>/master.key`,
 * created on first start with 32 random bytes and mode 0600. A key file readable by group or others
 * is refused, as ssh refuses such a private key.
 */
export function loadMasterKey(
  opts: { masterKey?: string | undefined; dataDir: string },
  log?: (message: string) => void,
): MasterKey {
  if (opts.masterKey) return fromBytes(parseMasterKey(opts.masterKey), 'env');
  const file = join(opts.dataDir, MASTER_KEY_FILE);
  if (!existsSync(file)) {
    mkdirSync(opts.dataDir, { recursive: true });
    const key = randomBytes(KEY_BYTES);
    // Write a private temporary file, then link it into place: atomic, and if another process
    // created the key first the link fails and theirs is used.
    const tmp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
    const fd = openSync(tmp, 'wx', 0o600);
    try {
      fchmodSync(fd, 0o600); // whatever the umask
      writeSync(fd, `${key.toString('base64')}\n`);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    try {
      linkSync(tmp, file);
      log?.(
        `created the master key ${file} (mode 0600): back it up, without it the stored secrets cannot be decrypted`,
      );
      return fromBytes(key, 'file', file);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    } finally {
      rmSync(tmp, { force: true });
    }
  }
  checkMode(file);
  const text = readFileSync(file, 'utf8');
  if (text.trim() === '') throw new MasterKeyError(`master key file ${file} is empty`);
  return fromBytes(parseMasterKey(text, `master key file ${file}`), 'file', file);
}

/**
 * The key a gateway shows an interactive run's worker endpoint (header `x-runway-app-key`): derived
 * from the master key both hold, so it is never stored nor sent anywhere else (docs/interactive.md).
 */
export function interactiveAppKey(master: MasterKey, runId: string): string {
  return createHmac('sha256', master.key).update(`runway interactive app v1:${runId}`).digest('hex');
}

/**
 * The token of a batch run's beacon URL (RUNTIME__DLTHUB_DSN, docs/runs-telemetry.md): derived from
 * the master key and the run id, so the worker checks it without storing it; never logged nor sent
 * anywhere but to the run's own process.
 */
export function runBeaconToken(master: MasterKey, runId: string): string {
  return createHmac('sha256', master.key).update(`runway run beacon v1:${runId}`).digest('hex');
}
