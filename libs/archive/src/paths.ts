import { ArchiveError } from './errors.js';

/** Longest path (UTF-8 bytes) and path component Runway accepts. */
export const MAX_PATH_BYTES = 4096;
export const MAX_COMPONENT_BYTES = 255;

// C0 controls and DEL: legal in POSIX names, but they break logs, terminals and listings.
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f]/;

/**
 * Checks a path relative to the package root (`files/` stripped): POSIX separators, no absolute
 * path, no `..`, no `.` or empty components, no control characters, bounded length. Returns it.
 */
export function validateRelativePath(path: string, what = 'path'): string {
  if (path.length === 0) throw new ArchiveError('invalid_path', `${what} is empty`);
  if (path.startsWith('/'))
    throw new ArchiveError(
      'absolute_path',
      `${what} ${JSON.stringify(path)} is absolute; only relative paths are allowed`,
      path,
    );
  if (CONTROL.test(path))
    throw new ArchiveError(
      'invalid_path',
      `${what} ${JSON.stringify(path)} contains a control character`,
      path,
    );
  if (Buffer.byteLength(path) > MAX_PATH_BYTES)
    throw new ArchiveError(
      'invalid_path',
      `${what} ${JSON.stringify(path.slice(0, 60))}… is longer than ${MAX_PATH_BYTES} bytes`,
      path,
    );
  const parts = path.split('/');
  if (parts.includes('..'))
    throw new ArchiveError(
      'path_traversal',
      `${what} ${JSON.stringify(path)} contains "..": paths may not leave the package`,
      path,
    );
  for (const p of parts) {
    if (p === '' || p === '.') {
      throw new ArchiveError(
        'invalid_path',
        `${what} ${JSON.stringify(path)} is not canonical (empty or "." component, or a trailing slash)`,
        path,
      );
    }
    if (Buffer.byteLength(p) > MAX_COMPONENT_BYTES) {
      throw new ArchiveError(
        'invalid_path',
        `${what} ${JSON.stringify(path)} has a component longer than ${MAX_COMPONENT_BYTES} bytes`,
        path,
      );
    }
  }
  return path;
}

/**
 * Checks a symlink's target so that the link can never lead out of the package tree, whatever
 * other links exist: relative, `..` only as a leading run, and no more of them than the link's
 * depth. (Together with "no entry lives below a symlink" this holds for chains of links too.)
 * `linkPath` is relative to the package root.
 */
export function validateSymlinkTarget(linkPath: string, target: string): string {
  const shown = `symlink ${JSON.stringify(linkPath)} -> ${JSON.stringify(target)}`;
  if (target.length === 0) throw new ArchiveError('invalid_path', `${shown} has an empty target`, linkPath);
  if (CONTROL.test(target))
    throw new ArchiveError('invalid_path', `${shown}: the target contains a control character`, linkPath);
  if (Buffer.byteLength(target) > MAX_PATH_BYTES)
    throw new ArchiveError(
      'invalid_path',
      `${shown}: the target is longer than ${MAX_PATH_BYTES} bytes`,
      linkPath,
    );
  if (target.startsWith('/'))
    throw new ArchiveError(
      'symlink_escape',
      `${shown} points to an absolute path; links must stay inside the package (use a relative target)`,
      linkPath,
    );
  const depth = linkPath.split('/').length - 1;
  let ups = 0;
  let seenName = false;
  for (const p of target.split('/')) {
    if (p === '' || p === '.') continue;
    if (p === '..') {
      if (seenName)
        throw new ArchiveError(
          'symlink_escape',
          `${shown}: ".." is only allowed at the start of a link target`,
          linkPath,
        );
      ups++;
    } else seenName = true;
  }
  if (ups > depth) throw new ArchiveError('symlink_escape', `${shown} points outside the package`, linkPath);
  return target;
}

/** Orders strings by Unicode code point, as Python's `sorted()` does (JS sort uses UTF-16 units). */
export function compareCodePoints(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x === y) continue;
    // Surrogates (0xD800-0xDFFF) encode code points above 0xFFFF: they sort after 0xE000-0xFFFF.
    const xs = x >= 0xd800 && x <= 0xdfff;
    const ys = y >= 0xd800 && y <= 0xdfff;
    if (xs !== ys) return xs ? 1 : -1;
    return x - y;
  }
  return a.length - b.length;
}
