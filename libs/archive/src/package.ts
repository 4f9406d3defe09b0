import { promisify } from 'node:util';
import { gunzip as gunzipCb, gzipSync } from 'node:zlib';
import { ArchiveError } from './errors.js';
import { ContentHasher, sha256Hex, sha3Base64 } from './hash.js';
import {
  FILES_PREFIX,
  MANIFEST_ENGINE_VERSION,
  MANIFEST_NAME,
  parseManifest,
  stringifyManifest,
  type ManifestEntry,
  type PackageManifest,
} from './manifest.js';
import { compareCodePoints, validateRelativePath, validateSymlinkTarget } from './paths.js';
import { BLOCK, RECORD, readTar, writeTar, type TarMember, type TarWriteEntry } from './tar.js';

const gunzip = promisify(gunzipCb);

export interface ArchiveLimits {
  /** Largest compressed upload. */
  maxArchiveBytes: number;
  /** Most entries (files and symlinks) below `files/`. */
  maxFiles: number;
  /** Largest sum of file sizes (uncompressed). */
  maxTotalBytes: number;
  /** Largest single file (uncompressed). */
  maxFileBytes: number;
  /** Largest manifest.yaml. */
  maxManifestBytes: number;
}

const MiB = 1024 * 1024;
export const DEFAULT_ARCHIVE_LIMITS: Readonly<ArchiveLimits> = Object.freeze({
  maxArchiveBytes: 128 * MiB,
  maxFiles: 20_000,
  maxTotalBytes: 256 * MiB,
  maxFileBytes: 256 * MiB,
  maxManifestBytes: 32 * MiB,
});

export function archiveLimits(partial: Partial<ArchiveLimits> = {}): ArchiveLimits {
  const l = { ...DEFAULT_ARCHIVE_LIMITS, ...partial };
  return { ...l, maxFileBytes: Math.min(l.maxFileBytes, l.maxTotalBytes) };
}

/**
 * One entry of a package, below `files/`. Hard links inside the package become regular files.
 * A symlink is described as git does: its `content` is the target path (UTF-8) and `sha256`
 * hashes that string; its `size` is 0. Check `type` before writing `content` to disk.
 */
export interface PackageFile {
  type: 'file' | 'symlink';
  path: string;
  content: Buffer;
  size: number;
  /** Hex SHA-256 of `content`: the blob's address. */
  sha256: string;
  /** Permission bits (0o777 for symlinks). */
  mode: number;
  /** Symlinks only: the relative target, checked to stay inside the package. */
  target?: string;
}

export interface ReadPackageResult {
  /** Sorted by path (code point order). */
  files: PackageFile[];
  manifest: PackageManifest;
  /** The `content_hash` the dlt CLI computes for this package (see ContentHasher). */
  contentHash: string;
  /** Sum of the regular files' sizes. */
  totalBytes: number;
  /** Size of the compressed archive. */
  archiveBytes: number;
}

function isBytes(x: unknown): x is Uint8Array {
  return x instanceof Uint8Array;
}

async function collect(input: Uint8Array | AsyncIterable<Uint8Array>, max: number): Promise<Buffer> {
  if (isBytes(input)) {
    if (input.length > max)
      throw new ArchiveError(
        'archive_too_large',
        `the archive is ${input.length} bytes, more than the limit of ${max} bytes`,
      );
    return Buffer.from(input.buffer, input.byteOffset, input.length);
  }
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const chunk of input) {
    n += chunk.length;
    if (n > max)
      throw new ArchiveError('archive_too_large', `the archive is more than the limit of ${max} bytes`);
    chunks.push(Buffer.from(chunk));
  }
  return Buffer.concat(chunks, n);
}

/** Upper bound of a valid package's inflated tar: contents, manifest, headers and padding. */
function inflatedCap(l: ArchiveLimits): number {
  const perMember = 4 * BLOCK; // header + pax header (+ its data) + padding
  return l.maxTotalBytes + l.maxManifestBytes + (2 * l.maxFiles + 16) * perMember + 2 * RECORD;
}

async function inflate(buf: Buffer, l: ArchiveLimits): Promise<Buffer> {
  if (buf.length < 2 || buf[0] !== 0x1f || buf[1] !== 0x8b) {
    throw new ArchiveError(
      'not_gzip',
      'the upload is not gzip-compressed: expected a .tar.gz package (gzip magic bytes 1f 8b missing)',
    );
  }
  const cap = inflatedCap(l);
  try {
    return await gunzip(buf, { maxOutputLength: cap });
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e.code === 'ERR_BUFFER_TOO_LARGE' || err instanceof RangeError) {
      throw new ArchiveError(
        'decompressed_too_large',
        `the archive decompresses to more than ${cap} bytes (limit ${l.maxTotalBytes} bytes of files): refusing a possible gzip bomb`,
      );
    }
    throw new ArchiveError('corrupt_gzip', `the gzip data is corrupt or truncated (${e.message})`);
  }
}

/**
 * Reads and validates a deployment package (a gzipped tar of `files/<path>` entries and
 * `manifest.yaml`, as the dlt CLI builds it). Everything is checked before anything is returned:
 * size limits (compressed, inflated while inflating, per file, total, entry count), member types
 * (regular files and symlinks only; hard links only to earlier members; no devices or FIFOs),
 * paths (no absolute paths, `..`, or non-canonical names), symlink targets (must stay inside),
 * and the manifest (present, well formed, and agreeing with the contents). Throws ArchiveError.
 */
export async function readPackage(
  input: Uint8Array | AsyncIterable<Uint8Array>,
  limits: Partial<ArchiveLimits> = {},
): Promise<ReadPackageResult> {
  const l = archiveLimits(limits);
  const archive = await collect(input, l.maxArchiveBytes);
  const tar = await inflate(archive, l);
  const members = readTar(tar, {
    maxMembers: 2 * l.maxFiles + 16,
    maxFileBytes: Math.max(l.maxFileBytes, l.maxManifestBytes),
    maxTotalBytes: l.maxTotalBytes,
    uncounted: MANIFEST_NAME,
  });

  const byPath = new Map<string, PackageFile>();
  const regularByName = new Map<string, TarMember>();
  const seenNames = new Set<string>();
  let manifestMember: TarMember | undefined;
  let totalBytes = 0;
  for (const m of members) {
    const shown = JSON.stringify(m.name);
    if (m.name.startsWith('/'))
      throw new ArchiveError(
        'absolute_path',
        `member ${shown} has an absolute path; only relative paths are allowed`,
        m.name,
      );
    if (m.name.split('/').includes('..'))
      throw new ArchiveError(
        'path_traversal',
        `member ${shown} contains "..": paths may not leave the package`,
        m.name,
      );
    if (seenNames.has(m.name))
      throw new ArchiveError(
        'duplicate_path',
        `member ${shown} appears more than once in the archive`,
        m.name,
      );
    seenNames.add(m.name);
    if (m.name === MANIFEST_NAME) {
      if (m.type !== 'file')
        throw new ArchiveError(
          'invalid_manifest',
          `manifest.yaml must be a regular file, not a ${m.type}`,
          m.name,
        );
      if (m.size > l.maxManifestBytes)
        throw new ArchiveError(
          'invalid_manifest',
          `manifest.yaml is larger than ${l.maxManifestBytes} bytes`,
          m.name,
        );
      manifestMember = m;
      continue;
    }
    if (m.type === 'dir' && (m.name === 'files' || m.name === '')) continue;
    if (!m.name.startsWith(FILES_PREFIX)) {
      throw new ArchiveError(
        'unexpected_member',
        `unexpected member ${shown}: a package holds only files/<path> entries and manifest.yaml`,
        m.name,
      );
    }
    const path = validateRelativePath(m.name.slice(FILES_PREFIX.length), `member path`);
    if (m.type === 'dir') continue; // directories are implied by the files below them
    if (byPath.size >= l.maxFiles)
      throw new ArchiveError(
        'too_many_files',
        `the package has more than ${l.maxFiles} files (the configured limit)`,
      );
    if (m.type === 'file') {
      if (m.size > l.maxFileBytes) {
        throw new ArchiveError(
          'file_too_large',
          `member ${shown} is ${m.size} bytes, more than the limit of ${l.maxFileBytes} bytes per file`,
          m.name,
        );
      }
      totalBytes += m.size;
      if (totalBytes > l.maxTotalBytes) {
        throw new ArchiveError(
          'total_size_exceeded',
          `the package's files add up to more than the limit of ${l.maxTotalBytes} bytes`,
          m.name,
        );
      }
      regularByName.set(m.name, m);
      byPath.set(path, {
        type: 'file',
        path,
        content: m.data,
        size: m.size,
        sha256: '',
        mode: m.mode & 0o777,
      });
    } else if (m.type === 'symlink') {
      const target = validateSymlinkTarget(path, m.linkname);
      byPath.set(path, {
        type: 'symlink',
        path,
        target,
        content: Buffer.from(target, 'utf8'),
        size: 0,
        sha256: '',
        mode: 0o777,
      });
    } else {
      // A hard link names another member of this archive; anything else would reach outside it.
      const source = regularByName.get(m.linkname);
      if (!source) {
        const why =
          m.linkname.startsWith('/') ||
          m.linkname.split('/').includes('..') ||
          !m.linkname.startsWith(FILES_PREFIX)
            ? 'outside the package'
            : 'to a member that is not an earlier regular file';
        throw new ArchiveError(
          'hardlink_escape',
          `hard link ${shown} -> ${JSON.stringify(m.linkname)} points ${why}`,
          m.name,
        );
      }
      totalBytes += source.size;
      if (totalBytes > l.maxTotalBytes) {
        throw new ArchiveError(
          'total_size_exceeded',
          `the package's files add up to more than the limit of ${l.maxTotalBytes} bytes`,
          m.name,
        );
      }
      byPath.set(path, {
        type: 'file',
        path,
        content: source.data,
        size: source.size,
        sha256: '',
        mode: m.mode & 0o777,
      });
    }
  }
  // No entry may live below a file or a symlink: it could not be created, or would be written
  // through the link.
  for (const path of byPath.keys()) {
    for (let i = path.indexOf('/'); i !== -1; i = path.indexOf('/', i + 1)) {
      const parent = byPath.get(path.slice(0, i));
      if (parent) {
        throw new ArchiveError(
          'path_conflict',
          `files/${path} lies below files/${parent.path}, which is a ${parent.type === 'symlink' ? 'symlink' : 'file'}`,
          `files/${path}`,
        );
      }
    }
  }
  if (!manifestMember)
    throw new ArchiveError('missing_manifest', 'the package has no manifest.yaml at its root');
  const manifest = parseManifest(manifestMember.data);

  const files = [...byPath.values()].sort((a, b) => compareCodePoints(a.path, b.path));
  for (const f of files) {
    f.sha256 = sha256Hex(f.content);
  }
  checkAgreement(manifest, byPath);
  return {
    files,
    manifest,
    contentHash: ContentHasher.forMembers(members),
    totalBytes,
    archiveBytes: archive.length,
  };
}

function checkAgreement(manifest: PackageManifest, byPath: ReadonlyMap<string, PackageFile>): void {
  const listed = new Set<string>();
  for (const e of manifest.files) {
    const p = JSON.stringify(e.relative_path);
    if (listed.has(e.relative_path))
      throw new ArchiveError('invalid_manifest', `manifest.yaml lists ${p} twice`, MANIFEST_NAME);
    listed.add(e.relative_path);
    const f = byPath.get(e.relative_path);
    if (!f)
      throw new ArchiveError(
        'manifest_mismatch',
        `manifest.yaml lists ${p}, but the package has no files/${e.relative_path}`,
        MANIFEST_NAME,
      );
    // dlt 1.20 records a symlink's size as stat() sees it (the target's size), which the archive
    // cannot show; newer dlt writes 0. Only regular files are checked.
    if (f.type === 'file' && f.size !== e.size_in_bytes) {
      throw new ArchiveError(
        'manifest_mismatch',
        `manifest.yaml says ${p} has ${e.size_in_bytes} bytes, but files/${e.relative_path} has ${f.size}`,
        MANIFEST_NAME,
      );
    }
    if (e.linkname !== undefined && (f.type !== 'symlink' || f.target !== e.linkname)) {
      throw new ArchiveError(
        'manifest_mismatch',
        `manifest.yaml says ${p} is a symlink to ${JSON.stringify(e.linkname)}, but the package disagrees`,
        MANIFEST_NAME,
      );
    }
    if (e.sha3_256 !== undefined && e.sha3_256 !== sha3Base64(f.content)) {
      throw new ArchiveError(
        'manifest_mismatch',
        `manifest.yaml's sha3_256 of ${p} does not match the contents of files/${e.relative_path}`,
        MANIFEST_NAME,
      );
    }
  }
  for (const path of byPath.keys()) {
    if (!listed.has(path))
      throw new ArchiveError(
        'manifest_mismatch',
        `files/${path} is in the package but not listed in manifest.yaml`,
        `files/${path}`,
      );
  }
}

// ------------------------------------------------------------------------------------------------
// building

export type BuildFile =
  | { path: string; content: Uint8Array | string; mode?: number; mtime?: number }
  | { path: string; target: string; mtime?: number };

export interface BuildOptions {
  /** gzip level (default 6). */
  level?: number;
}

interface BuildEntry {
  type: 'file' | 'symlink';
  path: string;
  target: string;
  content: Buffer;
  mode: number;
  mtime: number;
}

function normalize(files: readonly BuildFile[]): BuildEntry[] {
  const seen = new Set<string>();
  return files
    .map((f): BuildEntry => {
      const path = validateRelativePath(f.path);
      if (seen.has(path))
        throw new ArchiveError('duplicate_path', `${JSON.stringify(path)} is listed twice`, path);
      seen.add(path);
      if ('target' in f) {
        const target = validateSymlinkTarget(path, f.target);
        return {
          type: 'symlink',
          path,
          target,
          content: Buffer.from(target, 'utf8'),
          mode: 0o777,
          mtime: f.mtime ?? 0,
        };
      }
      const content = typeof f.content === 'string' ? Buffer.from(f.content, 'utf8') : Buffer.from(f.content);
      return { type: 'file', path, target: '', content, mode: f.mode ?? 0o644, mtime: f.mtime ?? 0 };
    })
    .sort((a, b) => compareCodePoints(a.path, b.path));
}

/** Size dlt 1.20 records for a symlink: stat() of its target (0 when it is not in the package). */
function linkSize(e: BuildEntry, byPath: ReadonlyMap<string, BuildEntry>): number {
  let cur = e;
  for (let hops = 0; hops < 40 && cur.type === 'symlink'; hops++) {
    const parts = cur.path.split('/').slice(0, -1);
    for (const p of cur.target.split('/')) {
      if (p === '..') parts.pop();
      else if (p !== '' && p !== '.') parts.push(p);
    }
    const next = byPath.get(parts.join('/'));
    if (!next) return 0;
    cur = next;
  }
  return cur.type === 'file' ? cur.content.length : 0;
}

/** The manifest dlt 1.20 writes for these files: `{relative_path, size_in_bytes}` sorted by path. */
export function packageManifest(files: readonly BuildFile[]): PackageManifest {
  return manifestOf(normalize(files));
}

function manifestOf(entries: readonly BuildEntry[]): PackageManifest {
  const byPath = new Map(entries.map((e) => [e.path, e]));
  return {
    engine_version: MANIFEST_ENGINE_VERSION,
    files: entries.map((e): ManifestEntry => ({
      relative_path: e.path,
      size_in_bytes: e.type === 'file' ? e.content.length : linkSize(e, byPath),
    })),
  };
}

/**
 * Builds a package with the dlt CLI's layout: `files/<path>` per entry (sorted by path; symlinks
 * as symlink members), then `manifest.yaml` last (mode 0644, mtime 0), gzipped. `readPackage` of
 * the result gives the `contentHash` the dlt CLI computes for the same files.
 */
export function buildPackage(files: readonly BuildFile[], opts: BuildOptions = {}): Buffer {
  const entries = normalize(files);
  const tar: TarWriteEntry[] = entries.map((e) =>
    e.type === 'symlink'
      ? { name: `${FILES_PREFIX}${e.path}`, type: 'symlink', linkname: e.target, mode: 0o777, mtime: e.mtime }
      : { name: `${FILES_PREFIX}${e.path}`, type: 'file', data: e.content, mode: e.mode, mtime: e.mtime },
  );
  tar.push({
    name: MANIFEST_NAME,
    type: 'file',
    data: Buffer.from(stringifyManifest(manifestOf(entries)), 'utf8'),
    mode: 0o644,
    mtime: 0,
  });
  return gzipSync(writeTar(tar), { level: opts.level ?? 6 });
}
