import { createHash } from 'node:crypto';
import { ArchiveError } from './errors.js';
import { compareCodePoints, validateRelativePath, validateSymlinkTarget } from './paths.js';

export interface FileListEntry {
  path: string;
  type: 'file' | 'symlink';
  size: number;
  target?: string;
}

export interface FileListLimits {
  maxFiles: number;
  maxTotalBytes: number;
  maxFileBytes: number;
}

/**
 * The checks readPackage applies to an archive, for a bare file list (the incremental sync API):
 * canonical relative paths, no duplicates, no entry below a file or symlink, symlink targets that
 * stay inside, and the count and size limits. Returns the entries sorted by path.
 */
export function checkFileList<E extends FileListEntry>(entries: readonly E[], limits: FileListLimits): E[] {
  if (entries.length > limits.maxFiles)
    throw new ArchiveError(
      'too_many_files',
      `the deployment has ${entries.length} files, more than the limit of ${limits.maxFiles}`,
    );
  const byPath = new Map<string, E>();
  let total = 0;
  for (const e of entries) {
    validateRelativePath(e.path);
    if (byPath.has(e.path))
      throw new ArchiveError('duplicate_path', `${JSON.stringify(e.path)} is listed more than once`, e.path);
    byPath.set(e.path, e);
    if (e.type === 'symlink') {
      if (e.target === undefined)
        throw new ArchiveError('invalid_path', `symlink ${JSON.stringify(e.path)} has no target`, e.path);
      validateSymlinkTarget(e.path, e.target);
      continue;
    }
    if (e.size > limits.maxFileBytes) {
      throw new ArchiveError(
        'file_too_large',
        `${JSON.stringify(e.path)} is ${e.size} bytes, more than the limit of ${limits.maxFileBytes} bytes per file`,
        e.path,
      );
    }
    total += e.size;
    if (total > limits.maxTotalBytes)
      throw new ArchiveError(
        'total_size_exceeded',
        `the files add up to more than the limit of ${limits.maxTotalBytes} bytes`,
        e.path,
      );
  }
  for (const path of byPath.keys()) {
    for (let i = path.indexOf('/'); i !== -1; i = path.indexOf('/', i + 1)) {
      const parent = byPath.get(path.slice(0, i));
      if (parent)
        throw new ArchiveError(
          'path_conflict',
          `${path} lies below ${parent.path}, which is a ${parent.type}`,
          path,
        );
    }
  }
  return [...entries].sort((a, b) => compareCodePoints(a.path, b.path));
}

/**
 * SHA-256 (hex) over the sorted `type<TAB>sha256<TAB>path` lines of a file list: equal exactly for
 * equal file sets (modes and times aside), without reading any contents. Deployments use it to
 * tell "nothing changed" cheaply.
 */
export function fileListDigest(
  entries: readonly { path: string; type: 'file' | 'symlink'; sha256: string }[],
): string {
  const h = createHash('sha256');
  for (const f of [...entries].sort((a, b) => compareCodePoints(a.path, b.path)))
    h.update(`${f.type}\t${f.sha256}\t${f.path}\n`);
  return h.digest('hex');
}
