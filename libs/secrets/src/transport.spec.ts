import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { DecryptionError } from './aead.js';
import { masterKeyId, type MasterKey } from './master-key.js';
import { openUpload, sealUpload, transportKey } from './transport.js';

const master = (key: Buffer = randomBytes(32)): MasterKey => ({ key, id: masterKeyId(key), source: 'env' });

describe('transport keys', () => {
  it('derives the same key from the same master key, another from another, never the master key itself', () => {
    const m = master();
    const k = transportKey(m, 'configuration-upload');
    assert.equal(k.length, 32);
    assert.deepEqual(transportKey(master(m.key), 'configuration-upload'), k);
    assert.notDeepEqual(transportKey(master(), 'configuration-upload'), k);
    assert.notDeepEqual(k, m.key);
  });
  it('opens an upload only for its workspace and command, with the same key', () => {
    const k = transportKey(master(), 'configuration-upload');
    const ctx = { workspaceId: 'w1', commandId: 'c1' };
    const sealed = sealUpload(k, Buffer.from('api_key = "s3cret"'), ctx);
    assert.equal(sealed.includes(Buffer.from('s3cret')), false);
    assert.equal(openUpload(k, sealed, ctx).toString(), 'api_key = "s3cret"');
    assert.throws(() => openUpload(k, sealed, { ...ctx, workspaceId: 'w2' }), DecryptionError);
    assert.throws(() => openUpload(k, sealed, { ...ctx, commandId: 'c2' }), DecryptionError);
    assert.throws(
      () => openUpload(transportKey(master(), 'configuration-upload'), sealed, ctx),
      DecryptionError,
    );
  });
});
