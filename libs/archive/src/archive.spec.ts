import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, it } from 'node:test';
import { gzipSync } from 'node:zlib';
import {
  ArchiveError,
  buildPackage,
  filesManifest,
  filesManifestHash,
  packageContentHash,
  readPackage,
  readTar,
  sha256Hex,
  stringifyManifest,
  writeTar,
  type ArchiveErrorCode,
  type TarWriteEntry,
} from './index.js';

const manifestOf = (files: [string, number][]) =>
  Buffer.from(
    stringifyManifest({
      engine_version: 1,
      files: files.map(([relative_path, size_in_bytes]) => ({ relative_path, size_in_bytes })),
    }),
  );

/** A gzipped tar of these entries, plus a manifest.yaml agreeing with the regular files unless given. */
function tgz(entries: TarWriteEntry[], manifest?: Buffer | null): Buffer {
  const m =
    manifest === undefined
      ? manifestOf(
          entries
            .filter((e) => e.name.startsWith('files/') && e.type === 'file')
            .map((e) => [e.name.slice(6), e.data?.length ?? 0]),
        )
      : manifest;
  return gzipSync(
    writeTar(m === null ? entries : [...entries, { name: 'manifest.yaml', type: 'file', data: m }]),
  );
}

const file = (name: string, text: string, mode = 0o644): TarWriteEntry => ({
  name,
  type: 'file',
  data: Buffer.from(text),
  mode,
});

async function rejects(input: Buffer, code: ArchiveErrorCode, message: RegExp, limits = {}) {
  await assert.rejects(readPackage(input, limits), (err: unknown) => {
    assert.ok(err instanceof ArchiveError, `expected ArchiveError, got ${String(err)}`);
    assert.equal(err.code, code, err.message);
    assert.match(err.message, message);
    return true;
  });
}

describe('libs/archive readPackage', () => {
  it('reads a package built by buildPackage: files, modes, symlinks, sizes and hashes', async () => {
    const archive = buildPackage([
      { path: 'pipelines/load.py', content: 'import dlt\n', mode: 0o755 },
      { path: 'README.md', content: '# hi\n' },
      { path: 'pipelines/link.py', target: 'load.py' },
      { path: 'déjà vu/ünïcode.txt', content: 'x' },
    ]);
    const pkg = await readPackage(archive);
    assert.deepEqual(
      pkg.files.map((f) => [f.type, f.path, f.size, f.mode, f.target]),
      [
        ['file', 'README.md', 5, 0o644, undefined],
        ['file', 'déjà vu/ünïcode.txt', 1, 0o644, undefined],
        ['symlink', 'pipelines/link.py', 0, 0o777, 'load.py'],
        ['file', 'pipelines/load.py', 11, 0o755, undefined],
      ],
    );
    assert.equal(pkg.files[3]!.sha256, sha256Hex('import dlt\n'));
    assert.equal(pkg.files[2]!.content.toString(), 'load.py');
    assert.equal(pkg.manifest.engine_version, 1);
    assert.deepEqual(
      pkg.manifest.files.map((f) => f.relative_path),
      ['README.md', 'déjà vu/ünïcode.txt', 'pipelines/link.py', 'pipelines/load.py'],
    );
    assert.equal(
      pkg.manifest.files[2]!.size_in_bytes,
      11,
      'dlt 1.20 records a symlink with the size of its target',
    );
    assert.match(pkg.contentHash, /^[A-Za-z0-9+/]{43}=$/);
    assert.equal(pkg.totalBytes, 17);
    assert.equal(pkg.archiveBytes, archive.length);
    assert.equal(
      pkg.contentHash,
      packageContentHash(pkg.files.map((f) => ({ path: f.path, type: f.type, content: f.content }))),
      'the hash of a file list equals the hash of the package holding it',
    );
  });

  it('ignores timestamps, modes and the manifest in the content hash, but not names or contents', async () => {
    const a = await readPackage(buildPackage([{ path: 'a.py', content: '1', mtime: 1, mode: 0o644 }]));
    const b = await readPackage(buildPackage([{ path: 'a.py', content: '1', mtime: 999, mode: 0o755 }]));
    const c = await readPackage(buildPackage([{ path: 'a.py', content: '2' }]));
    const d = await readPackage(buildPackage([{ path: 'b.py', content: '1' }]));
    assert.equal(a.contentHash, b.contentHash);
    assert.notEqual(a.contentHash, c.contentHash);
    assert.notEqual(a.contentHash, d.contentHash);
  });

  it('turns a hard link to an earlier member into a regular file with the same content', async () => {
    const pkg = await readPackage(
      tgz(
        [file('files/a.txt', 'same'), { name: 'files/b.txt', type: 'hardlink', linkname: 'files/a.txt' }],
        manifestOf([
          ['a.txt', 4],
          ['b.txt', 4],
        ]),
      ),
    );
    assert.deepEqual(
      pkg.files.map((f) => [f.type, f.path, f.content.toString()]),
      [
        ['file', 'a.txt', 'same'],
        ['file', 'b.txt', 'same'],
      ],
    );
  });

  it('accepts an empty package and directory members', async () => {
    const empty = await readPackage(tgz([], manifestOf([])));
    assert.equal(empty.files.length, 0);
    const withDirs = await readPackage(
      tgz([{ name: 'files', type: 'dir' }, { name: 'files/sub', type: 'dir' }, file('files/sub/x', 'x')]),
    );
    assert.deepEqual(
      withDirs.files.map((f) => f.path),
      ['sub/x'],
    );
  });

  it('accepts a stream as input', async () => {
    const archive = buildPackage([{ path: 'a', content: 'a' }]);
    async function* chunks() {
      for (let i = 0; i < archive.length; i += 7) yield archive.subarray(i, i + 7);
    }
    assert.equal((await readPackage(chunks())).files.length, 1);
  });

  describe('refuses, with a precise ArchiveError', () => {
    it('absolute paths', () =>
      rejects(
        tgz([file('/etc/passwd', 'x')], null),
        'absolute_path',
        /member "\/etc\/passwd" has an absolute path/,
      ));
    it('".." components', async () => {
      await rejects(
        tgz([file('files/../../etc/passwd', 'x')]),
        'path_traversal',
        /"files\/..\/..\/etc\/passwd" contains "\.\."/,
      );
      await rejects(tgz([file('../x', 'x')], null), 'path_traversal', /contains "\.\."/);
    });
    it('non-canonical paths', () => rejects(tgz([file('files/a//b', 'x')]), 'invalid_path', /not canonical/));
    it('members outside files/', () =>
      rejects(
        tgz([file('files/a', 'x'), file('setup.sh', 'x')]),
        'unexpected_member',
        /unexpected member "setup.sh"/,
      ));
    it('symlinks leaving the tree', async () => {
      await rejects(
        tgz([{ name: 'files/x', type: 'symlink', linkname: '../../etc/passwd' }]),
        'symlink_escape',
        /symlink "x" -> "..\/..\/etc\/passwd" points outside the package/,
      );
      await rejects(
        tgz([{ name: 'files/a/x', type: 'symlink', linkname: '/etc/passwd' }]),
        'symlink_escape',
        /points to an absolute path/,
      );
      await rejects(
        tgz([{ name: 'files/a/x', type: 'symlink', linkname: 'b/../../..' }]),
        'symlink_escape',
        /"\.\." is only allowed at the start/,
      );
    });
    it('entries below a symlink or a file', async () => {
      await rejects(
        tgz([{ name: 'files/d', type: 'symlink', linkname: 'e' }, file('files/d/x', 'x')]),
        'path_conflict',
        /files\/d\/x lies below files\/d, which is a symlink/,
      );
      await rejects(tgz([file('files/d', 'x'), file('files/d/x', 'x')]), 'path_conflict', /which is a file/);
    });
    it('hard links to anything but an earlier member', async () => {
      await rejects(
        tgz([{ name: 'files/x', type: 'hardlink', linkname: '/etc/shadow' }]),
        'hardlink_escape',
        /hard link "files\/x" -> "\/etc\/shadow" points outside the package/,
      );
      await rejects(
        tgz([{ name: 'files/x', type: 'hardlink', linkname: 'files/later' }, file('files/later', 'x')]),
        'hardlink_escape',
        /not an earlier regular file/,
      );
    });
    it('device files and FIFOs', async () => {
      await rejects(
        tgz([{ name: 'files/null', type: 'chardev' }]),
        'unsupported_member',
        /"files\/null" is a character device/,
      );
      await rejects(tgz([{ name: 'files/sda', type: 'blockdev' }]), 'unsupported_member', /block device/);
      await rejects(
        tgz([{ name: 'files/pipe', type: 'fifo' }]),
        'unsupported_member',
        /"files\/pipe" is a FIFO/,
      );
    });
    it('more files than the limit', () =>
      rejects(
        tgz([file('files/a', '1'), file('files/b', '2'), file('files/c', '3')]),
        'too_many_files',
        /more than 2 files/,
        { maxFiles: 2 },
      ));
    it('more bytes than the limits', async () => {
      await rejects(
        tgz([file('files/a', 'x'.repeat(600)), file('files/b', 'y'.repeat(600))]),
        'total_size_exceeded',
        /add up to more than the limit of 1000 bytes/,
        {
          maxTotalBytes: 1000,
        },
      );
      await rejects(
        tgz([file('files/a', 'x'.repeat(600))]),
        'file_too_large',
        /"files\/a" is 600 bytes, more than the limit of 500 bytes per file/,
        { maxFileBytes: 500 },
      );
    });
    it('a compressed upload above the limit', () =>
      rejects(
        buildPackage([{ path: 'a', content: 'x' }]),
        'archive_too_large',
        /more than the limit of 10 bytes/,
        { maxArchiveBytes: 10 },
      ));
    it('gzip bombs, while inflating', async () => {
      const bomb = gzipSync(Buffer.alloc(64 * 1024 * 1024), { level: 9 });
      assert.ok(bomb.length < 128 * 1024);
      await rejects(bomb, 'decompressed_too_large', /decompresses to more than \d+ bytes .* gzip bomb/, {
        maxTotalBytes: 1024 * 1024,
        maxManifestBytes: 65536,
        maxFiles: 10,
      });
    });
    it('a tar header claiming a huge member', async () => {
      const tar = writeTar([file('files/a', 'x')]);
      tar.write('77777777777\0', 124, 'ascii'); // size field: 8 GiB
      let sum = 0;
      tar.write('        ', 148, 'ascii');
      for (let i = 0; i < 512; i++) sum += tar[i]!;
      tar.write(`${sum.toString(8).padStart(6, '0')}\0`, 148, 'ascii');
      await rejects(gzipSync(tar), 'file_too_large', /more than the limit/);
    });
    it('data that is not gzip', async () => {
      await rejects(writeTar([file('files/a', 'x')]), 'not_gzip', /not gzip-compressed/);
      await rejects(Buffer.from('PK\x03\x04 a zip file'), 'not_gzip', /not gzip-compressed/);
      await rejects(Buffer.alloc(0), 'not_gzip', /not gzip-compressed/);
    });
    it('corrupt gzip and corrupt tar', async () => {
      const good = buildPackage([{ path: 'a', content: 'x'.repeat(5000) }]);
      await rejects(good.subarray(0, good.length - 20), 'corrupt_gzip', /corrupt or truncated/);
      await rejects(
        gzipSync(Buffer.from('this is not a tar archive'.repeat(100))),
        'corrupt_tar',
        /bad checksum/,
      );
      const tar = writeTar([
        file('files/a', 'x'.repeat(2000)),
        { name: 'manifest.yaml', type: 'file', data: manifestOf([['a', 2000]]) },
      ]);
      await rejects(gzipSync(tar.subarray(0, 1024)), 'truncated', /truncated/);
    });
    it('a missing manifest', () =>
      rejects(tgz([file('files/a', 'x')], null), 'missing_manifest', /no manifest.yaml/));
    it('a malformed manifest', async () => {
      await rejects(
        tgz([file('files/a', 'x')], Buffer.from('engine_version: [1\n')),
        'invalid_manifest',
        /not valid YAML/,
      );
      await rejects(
        tgz([file('files/a', 'x')], Buffer.from('engine_version: 2\nfiles: []\n')),
        'invalid_manifest',
        /engine_version: must be 1/,
      );
      await rejects(
        tgz(
          [file('files/a', 'x')],
          Buffer.from('engine_version: 1\nfiles:\n- relative_path: a\n  size_in_bytes: -1\n'),
        ),
        'invalid_manifest',
        /files\.0\.size_in_bytes/,
      );
      await rejects(
        tgz(
          [file('files/a', 'x')],
          manifestOf([
            ['a', 1],
            ['a', 1],
          ]),
        ),
        'invalid_manifest',
        /lists "a" twice/,
      );
    });
    it('a manifest that disagrees with the contents', async () => {
      await rejects(
        tgz(
          [file('files/a', 'x')],
          manifestOf([
            ['a', 1],
            ['b', 1],
          ]),
        ),
        'manifest_mismatch',
        /lists "b", but the package has no files\/b/,
      );
      await rejects(
        tgz([file('files/a', 'x'), file('files/b', 'y')], manifestOf([['a', 1]])),
        'manifest_mismatch',
        /files\/b is in the package but not listed/,
      );
      await rejects(
        tgz([file('files/a', 'xyz')], manifestOf([['a', 1]])),
        'manifest_mismatch',
        /says "a" has 1 bytes, but files\/a has 3/,
      );
      const withSha = Buffer.from(
        'engine_version: 1\nfiles:\n- relative_path: a\n  size_in_bytes: 1\n  sha3_256: p//G+L8e12ZRwUdWoGHWYvWA/03kO0n6gtgKS4D4Q0o=\n',
      );
      await rejects(
        tgz([file('files/a', 'x')], withSha),
        'manifest_mismatch',
        /sha3_256 of "a" does not match/,
      );
    });
    it('duplicate members', () =>
      rejects(
        tgz([file('files/a', 'x'), file('files/a', 'x')]),
        'duplicate_path',
        /"files\/a" appears more than once/,
      ));
  });
});

describe('libs/archive tar reader', () => {
  it('reads pax long names and links, and GNU long names', () => {
    const long = `files/${'d'.repeat(120)}/${'f'.repeat(120)}.py`;
    const members = readTar(
      writeTar([file(long, 'x'), { name: 'files/l', type: 'symlink', linkname: 'x'.repeat(150) }]),
      {
        maxMembers: 10,
        maxFileBytes: 100,
        maxTotalBytes: 100,
      },
    );
    assert.equal(members[0]!.name, long);
    assert.equal(members[1]!.linkname, 'x'.repeat(150));
  });
});

describe('files manifest of dlt ≥ 1.26', () => {
  it('lists base64 SHA3-256 digests in path order and hashes (path, digest) pairs as dlt 1.26 does', () => {
    const items = filesManifest([
      { path: 'b.py', type: 'file', content: Buffer.from('print(2)\n') },
      { path: 'a.py', type: 'file', content: Buffer.from('print(1)\n') },
      { path: 'link', type: 'symlink', content: Buffer.alloc(0), target: 'a.py' },
    ]);
    assert.deepEqual(
      items.map((i) => i.relative_path),
      ['a.py', 'b.py', 'link'],
    );
    assert.equal(items[0]!.sha3_256, createHash('sha3-256').update('print(1)\n').digest('base64'));
    assert.deepEqual(items[2], {
      relative_path: 'link',
      size_in_bytes: 0,
      sha3_256: createHash('sha3-256').update('a.py').digest('base64'),
      linkname: 'a.py',
    });
    // What dlt 1.26's compute_package_content_hash returns for these three entries.
    assert.equal(filesManifestHash(items), '6PYdz/STdXRbwp2Wef1jykY9YYn03TjG/QxGE8gBg18=');
  });
});
