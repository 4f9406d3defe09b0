import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { packageContentHash } from '#libs/archive';
import type { DeploymentFile } from '#libs/contracts';
import { ContentHashCache, hashFiles } from './hash-cache.js';

const ws = '6b1f5c1e-1f7e-4a4b-9a55-3c2f1d0e9a11';

function workspace(n: number, size: number) {
  const contents = new Map<string, Buffer>();
  const files: DeploymentFile[] = [];
  for (let i = 0; i < n; i++) {
    const content = randomBytes(size);
    const sha256 = createHash('sha256').update(content).digest('hex');
    contents.set(sha256, content);
    files.push({ path: `src/m${String(i).padStart(4, '0')}.py`, type: 'file', size, sha256, mode: 0o644 });
  }
  return { files, contents };
}

const expected = (files: DeploymentFile[], contents: Map<string, Buffer>) =>
  packageContentHash(
    files.map((f) => ({
      path: f.path,
      type: f.type,
      content: f.type === 'file' ? contents.get(f.sha256)! : Buffer.from(f.target ?? ''),
    })),
  );

describe('content hash with cached midstates', () => {
  it('equals the full hash, and reads only what follows the first difference', async () => {
    const { files, contents } = workspace(200, 10_000);
    const cache = new ContentHashCache(4096, 50_000);
    let reads = 0;
    const read = async (f: DeploymentFile) => (reads++, contents.get(f.sha256)!);
    assert.equal(await hashFiles(ws, files, cache, read), expected(files, contents));
    assert.equal(reads, 200);

    // Change file 150: files 0..149 come from a midstate (checkpoints every 5 files here).
    const changed = Buffer.from('changed');
    const sha = createHash('sha256').update(changed).digest('hex');
    contents.set(sha, changed);
    const next = files.map((f, i) => (i === 150 ? { ...f, size: changed.length, sha256: sha } : f));
    reads = 0;
    assert.equal(await hashFiles(ws, next, cache, read), expected(next, contents));
    assert.ok(reads <= 55, `read ${reads} files`);

    // Identical list: nothing to read. Another workspace: no sharing.
    reads = 0;
    assert.equal(await hashFiles(ws, next, cache, read), expected(next, contents));
    assert.equal(reads, 0);
    assert.equal(
      await hashFiles('0d5c2a7e-2b4f-4c3a-8e1d-5f6a7b8c9d01', next, cache, read),
      expected(next, contents),
    );
    assert.equal(reads, 200);
  });

  it('handles symlinks, removals and additions', async () => {
    const { files, contents } = workspace(30, 1000);
    const cache = new ContentHashCache(4096, 2000);
    const read = async (f: DeploymentFile) => contents.get(f.sha256)!;
    await hashFiles(ws, files, cache, read);
    const link: DeploymentFile = {
      path: 'src/m0010.link',
      type: 'symlink',
      size: 0,
      sha256: createHash('sha256').update('m0001.py').digest('hex'),
      mode: 0o777,
      target: 'm0001.py',
    };
    const edited = [...files.slice(0, 10), link, ...files.slice(12)];
    assert.equal(await hashFiles(ws, edited, cache, read), expected(edited, contents));
    const tiny = new ContentHashCache(2, 1);
    assert.equal(await hashFiles(ws, edited, tiny, read), expected(edited, contents));
    assert.equal(tiny.size, 2, 'bounded');
  });
});
