import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import {
  createDataKey,
  DecryptionError,
  decryptFile,
  encryptFile,
  isSealed,
  loadMasterKey,
  MASTER_KEY_FILE,
  MasterKeyError,
  open,
  seal,
  unwrapDataKey,
} from './index.js';

const dirs: string[] = [];
const tempDir = () => {
  const d = mkdtempSync(join(tmpdir(), 'runway-secrets-'));
  dirs.push(d);
  return d;
};
after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

const ws = '6b1f5c1e-1f7e-4a4b-9a55-3c2f1d0e9a11';
const otherWs = '1e6d3b8f-3c5a-4d4b-9f2e-6a7b8c9d0e12';
const ctx = { workspaceId: ws, ownerId: 'cfg-1', version: 3, path: 'prod.secrets.toml' };

describe('AES-256-GCM sealing', () => {
  const key = randomBytes(32);
  it('round-trips and never shows the plaintext in the sealed bytes', () => {
    const plain = Buffer.from('password = "sk_live_abc123"');
    const sealed = seal(key, plain, 'aad');
    assert.ok(isSealed(sealed));
    assert.equal(sealed.includes(Buffer.from('sk_live_abc123')), false);
    assert.deepEqual(open(key, sealed, 'aad'), plain);
    // A random IV: the same plaintext seals differently each time.
    assert.notDeepEqual(seal(key, plain, 'aad'), sealed);
  });
  it('detects tampering with the IV, the tag or the ciphertext', () => {
    const sealed = seal(key, Buffer.from('secret value'), 'aad');
    for (const at of [1, 13, 29, sealed.length - 1]) {
      const bad = Buffer.from(sealed);
      bad[at] = bad[at]! ^ 0x01;
      assert.throws(() => open(key, bad, 'aad'), DecryptionError, `byte ${at}`);
    }
    assert.throws(() => open(key, sealed.subarray(0, sealed.length - 1), 'aad'), DecryptionError);
    assert.throws(() => open(key, sealed.subarray(0, 10), 'aad'), DecryptionError);
  });
  it('fails with another key or another AAD', () => {
    const sealed = seal(key, Buffer.from('x'), 'aad');
    assert.throws(() => open(randomBytes(32), sealed, 'aad'), DecryptionError);
    assert.throws(() => open(key, sealed, 'aad2'), DecryptionError);
  });
});

describe('workspace data keys and files', () => {
  const master = loadMasterKey({ masterKey: randomBytes(32).toString('base64'), dataDir: '/nonexistent' });
  it('wraps a data key that only the same master key and workspace unwrap', () => {
    const { dataKey, wrapped } = createDataKey(master, ws);
    assert.equal(wrapped.kek, master.id);
    assert.equal(Buffer.from(wrapped.wrappedKey, 'base64').includes(dataKey), false);
    assert.deepEqual(unwrapDataKey(master, ws, wrapped), dataKey);
    assert.throws(() => unwrapDataKey(master, otherWs, wrapped), DecryptionError);
    assert.throws(() => unwrapDataKey(master, ws, { ...wrapped, keyId: 'another' }), DecryptionError);
    const other = loadMasterKey({ masterKey: randomBytes(32).toString('base64'), dataDir: '/nonexistent' });
    assert.throws(
      () => unwrapDataKey(other, ws, wrapped),
      (e: unknown) => e instanceof MasterKeyError && /RUNWAY_MASTER_KEY/.test(e.message),
    );
    // Same fingerprint but different bytes (forged kek): the GCM tag still refuses.
    assert.throws(() => unwrapDataKey(other, ws, { ...wrapped, kek: other.id }), DecryptionError);
  });
  it('binds a file to its workspace, owner, version and path', () => {
    const { dataKey } = createDataKey(master, ws);
    const sealed = encryptFile(dataKey, Buffer.from('token = "t0p"'), ctx);
    assert.equal(decryptFile(dataKey, sealed, ctx).toString(), 'token = "t0p"');
    assert.throws(() => decryptFile(dataKey, sealed, { ...ctx, workspaceId: otherWs }), DecryptionError);
    assert.throws(() => decryptFile(dataKey, sealed, { ...ctx, version: 4 }), DecryptionError);
    assert.throws(
      () => decryptFile(dataKey, sealed, { ...ctx, path: 'access.secrets.toml' }),
      DecryptionError,
    );
    assert.throws(() => decryptFile(dataKey, sealed, { ...ctx, ownerId: 'cfg-2' }), DecryptionError);
  });
});

describe('master key', () => {
  it('takes RUNWAY_MASTER_KEY (base64 or base64url) and refuses a key that is not 32 bytes', () => {
    const bytes = randomBytes(32);
    const a = loadMasterKey({ masterKey: bytes.toString('base64'), dataDir: '/nonexistent' });
    const b = loadMasterKey({ masterKey: bytes.toString('base64url'), dataDir: '/nonexistent' });
    assert.deepEqual(a.key, bytes);
    assert.equal(a.id, b.id);
    assert.equal(a.source, 'env');
    assert.match(a.id, /^[0-9a-f]{16}$/);
    assert.throws(
      () => loadMasterKey({ masterKey: randomBytes(16).toString('base64'), dataDir: '/x' }),
      /32 bytes/,
    );
    assert.throws(() => loadMasterKey({ masterKey: 'not base64!!', dataDir: '/x' }), MasterKeyError);
  });
  it('creates <dataDir>/master.key on first start with mode 0600 and reuses it', () => {
    const dir = join(tempDir(), 'nested');
    const logs: string[] = [];
    const first = loadMasterKey({ dataDir: dir }, (m) => logs.push(m));
    const file = join(dir, MASTER_KEY_FILE);
    assert.equal(first.file, file);
    assert.equal(statSync(file).mode & 0o777, 0o600);
    assert.equal(Buffer.from(readFileSync(file, 'utf8').trim(), 'base64').length, 32);
    assert.equal(logs.length, 1);
    assert.equal(logs[0]!.includes(first.key.toString('base64')), false, 'the key itself is never logged');
    const again = loadMasterKey({ dataDir: dir }, (m) => logs.push(m));
    assert.deepEqual(again.key, first.key);
    assert.equal(logs.length, 1);
  });
  it('creates the key with mode 0600 whatever the umask', () => {
    const old = process.umask(0o000);
    try {
      const dir = tempDir();
      loadMasterKey({ dataDir: dir });
      assert.equal(statSync(join(dir, MASTER_KEY_FILE)).mode & 0o777, 0o600);
    } finally {
      process.umask(old);
    }
  });
  it('refuses a key file readable by group or others, and an empty or malformed one', () => {
    const dir = tempDir();
    loadMasterKey({ dataDir: dir });
    const file = join(dir, MASTER_KEY_FILE);
    chmodSync(file, 0o644);
    assert.throws(
      () => loadMasterKey({ dataDir: dir }),
      (e: unknown) => e instanceof MasterKeyError && /chmod 600/.test(e.message) && /0644/.test(e.message),
    );
    chmodSync(file, 0o640);
    assert.throws(() => loadMasterKey({ dataDir: dir }), MasterKeyError);
    writeFileSync(file, '', { mode: 0o600 });
    chmodSync(file, 0o600);
    assert.throws(() => loadMasterKey({ dataDir: dir }), /empty/);
    writeFileSync(file, 'c2hvcnQ=\n');
    assert.throws(() => loadMasterKey({ dataDir: dir }), /32 bytes/);
  });
  it('gives concurrent first starts in several processes the same key', async () => {
    const dir = tempDir();
    const moduleUrl = new URL('./master-key.js', import.meta.url).href;
    const script = `const m = await import(${JSON.stringify(moduleUrl)}); process.stdout.write(m.loadMasterKey({ dataDir: ${JSON.stringify(dir)} }).id);`;
    const ids = await Promise.all(
      Array.from(
        { length: 6 },
        () =>
          new Promise<string>((resolve, reject) => {
            execFile(process.execPath, ['--input-type=module', '-e', script], (err, stdout) =>
              err ? reject(err) : resolve(stdout),
            );
          }),
      ),
    );
    assert.equal(new Set(ids).size, 1, ids.join(','));
    assert.equal(statSync(join(dir, MASTER_KEY_FILE)).mode & 0o777, 0o600);
  });
});
