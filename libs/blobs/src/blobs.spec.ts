import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { createTestEnvironment, type TestEnvironment } from '#libs/testing';
import { blobBucketName, BlobIntegrityError, BlobStore } from './index.js';

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
const wsA = '6b1f5c1e-1f7e-4a4b-9a55-3c2f1d0e9a11';
const wsB = '0d5c2a7e-2b4f-4c3a-8e1d-5f6a7b8c9d01';

describe('libs/blobs (real JetStream object store)', () => {
  let env: TestEnvironment;
  let blobs: BlobStore;
  before(async () => {
    env = await createTestEnvironment();
    blobs = await BlobStore.open(env.nats, { bucket: blobBucketName(env.subjectPrefix) });
  });
  after(() => env.close());

  it('stores content once under its hash and reads it back (empty, one chunk, many chunks)', async () => {
    for (const data of [Buffer.alloc(0), Buffer.from('hello'), randomBytes(700 * 1024)]) {
      const first = await blobs.put(wsA, data);
      assert.deepEqual(first, { sha256: sha(data), size: data.length, created: true });
      const again = await blobs.put(wsA, data, sha(data));
      assert.equal(again.created, false, 'stored once');
      assert.deepEqual(await blobs.get(wsA, sha(data)), data);
      assert.equal((await blobs.stat(wsA, sha(data)))?.size, data.length);
    }
  });

  it('stores concurrent uploads of the same content once, and again after a delete', async () => {
    const data = randomBytes(300 * 1024);
    const results = await Promise.all(Array.from({ length: 6 }, () => blobs.put(wsA, data)));
    assert.equal(results.filter((r) => r.created).length, 1, 'one upload wins, the others see it stored');
    assert.deepEqual(await blobs.get(wsA, sha(data)), data);
    assert.deepEqual(
      Buffer.from((await blobs.os.getBlob(`${wsA}/${sha(data)}`))!),
      data,
      'readable by the object store client too',
    );
    await blobs.delete(wsA, sha(data));
    assert.equal(await blobs.get(wsA, sha(data)), null);
    assert.equal((await blobs.put(wsA, data)).created, true);
    assert.deepEqual(await blobs.get(wsA, sha(data)), data);
    // Only one object's worth of chunks is left in the bucket for it.
    const status = await blobs.os.status();
    assert.ok(status.size < 10 * 1024 * 1024);
  });

  it('keeps workspaces apart', async () => {
    const data = Buffer.from(`only in A ${randomBytes(4).toString('hex')}`);
    await blobs.put(wsA, data);
    assert.equal(await blobs.get(wsB, sha(data)), null);
    assert.equal(await blobs.stat(wsB, sha(data)), null);
    assert.deepEqual(await blobs.missing(wsB, [sha(data), sha(data)]), [sha(data)]);
    assert.deepEqual(await blobs.missing(wsA, [sha(data)]), []);
    assert.ok((await blobs.list(wsA)).some((b) => b.sha256 === sha(data)));
    assert.ok(!(await blobs.list(wsB)).some((b) => b.sha256 === sha(data)));
  });

  it('refuses content that does not match the expected hash, and deletes', async () => {
    const data = Buffer.from('x');
    await assert.rejects(blobs.put(wsB, data, sha(Buffer.from('y'))), BlobIntegrityError);
    assert.equal(await blobs.stat(wsB, sha(data)), null, 'nothing stored');
    await blobs.put(wsB, data);
    await blobs.delete(wsB, sha(data));
    assert.equal(await blobs.get(wsB, sha(data)), null);
    assert.throws(() => BlobStore.objectName('../x', sha(data)));
    assert.throws(() => BlobStore.objectName(wsA, 'nothex'));
  });
});
