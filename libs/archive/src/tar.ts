import { ArchiveError } from './errors.js';

/**
 * A small, strict tar reader and writer (POSIX ustar + pax, GNU long names), over in-memory
 * buffers. It reads what Python's `tarfile` writes (the dlt CLI's packages) and refuses anything
 * it does not understand instead of guessing.
 */

export const BLOCK = 512;
export const RECORD = 20 * BLOCK; // Python (and GNU tar) pad the archive to a 10 KiB record

export type TarMemberType = 'file' | 'dir' | 'symlink' | 'hardlink';

export interface TarMember {
  name: string;
  type: TarMemberType;
  /** Byte length of `data` (0 for everything but regular files). */
  size: number;
  mode: number;
  mtime: number;
  /** Target of a symlink or hardlink. */
  linkname: string;
  /** Contents of a regular file: a view into the inflated archive, not a copy. */
  data: Buffer;
}

export interface TarReadLimits {
  /** Most members of any kind. */
  maxMembers: number;
  /** Largest regular file. */
  maxFileBytes: number;
  /** Sum of all regular files (except `uncounted`). */
  maxTotalBytes: number;
  /** A member name whose size does not count towards maxTotalBytes (bounded by maxFileBytes alone). */
  uncounted?: string;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

function decodeName(bytes: Uint8Array, what: string): string {
  try {
    return utf8.decode(bytes);
  } catch {
    throw new ArchiveError('invalid_path', `a member ${what} is not valid UTF-8`);
  }
}

/** NUL-terminated string field. */
function str(buf: Buffer, off: number, len: number): Uint8Array {
  const field = buf.subarray(off, off + len);
  const end = field.indexOf(0);
  return end === -1 ? field : field.subarray(0, end);
}

/** Numeric field: octal digits (NUL/space padded) or GNU base-256 when the high bit is set. */
function num(buf: Buffer, off: number, len: number, what: string): number {
  const first = buf[off]!;
  if (first & 0x80) {
    if (first === 0xff) throw new ArchiveError('corrupt_tar', `negative ${what} in a tar header`);
    let n = first & 0x7f;
    for (let i = 1; i < len; i++) {
      n = n * 256 + buf[off + i]!;
      if (n > Number.MAX_SAFE_INTEGER)
        throw new ArchiveError('corrupt_tar', `${what} in a tar header is too large`);
    }
    return n;
  }
  const text = buf
    .toString('latin1', off, off + len)
    .replace(/[\0 ]+$/, '')
    .replace(/^ +/, '');
  if (text === '') return 0;
  if (!/^[0-7]+$/.test(text)) throw new ArchiveError('corrupt_tar', `invalid ${what} field in a tar header`);
  return parseInt(text, 8);
}

function checksumOk(header: Buffer): boolean {
  let stored: number;
  try {
    stored = num(header, 148, 8, 'checksum');
  } catch {
    return false;
  }
  let unsigned = 0;
  let signed = 0;
  for (let i = 0; i < BLOCK; i++) {
    const b = i >= 148 && i < 156 ? 0x20 : header[i]!;
    unsigned += b;
    signed += b > 127 ? b - 256 : b;
  }
  return stored === unsigned || stored === signed;
}

function isZeroBlock(b: Buffer): boolean {
  for (let i = 0; i < BLOCK; i++) if (b[i] !== 0) return false;
  return true;
}

/** Parses pax records `"<len> <key>=<value>\n"`. */
function parsePax(data: Buffer): Map<string, string> {
  const out = new Map<string, string>();
  let pos = 0;
  while (pos < data.length) {
    if (data[pos] === 0) break;
    const sp = data.indexOf(0x20, pos);
    if (sp === -1) throw new ArchiveError('corrupt_tar', 'malformed pax extended header');
    const len = Number(data.toString('latin1', pos, sp));
    if (!Number.isInteger(len) || len <= sp - pos + 1 || pos + len > data.length) {
      throw new ArchiveError('corrupt_tar', 'malformed pax extended header');
    }
    const rec = data.subarray(sp + 1, pos + len - 1); // without the trailing newline
    const eq = rec.indexOf(0x3d);
    if (eq === -1 || data[pos + len - 1] !== 0x0a)
      throw new ArchiveError('corrupt_tar', 'malformed pax extended header');
    const key = rec.subarray(0, eq).toString('latin1');
    out.set(key, decodeName(rec.subarray(eq + 1), `pax ${key}`));
    pos += len;
  }
  return out;
}

const padded = (n: number) => Math.ceil(n / BLOCK) * BLOCK;

/** Reads every member of an uncompressed tar archive, enforcing the limits as it goes. */
export function readTar(buf: Buffer, limits: TarReadLimits): TarMember[] {
  const members: TarMember[] = [];
  let pos = 0;
  let total = 0;
  let pax: Map<string, string> | undefined;
  let longName: string | undefined;
  let longLink: string | undefined;
  while (pos + BLOCK <= buf.length) {
    const header = buf.subarray(pos, pos + BLOCK);
    if (isZeroBlock(header)) return members; // end of archive: what follows is padding
    if (!checksumOk(header))
      throw new ArchiveError(
        'corrupt_tar',
        `corrupt tar header at offset ${pos} (bad checksum): not a tar archive, or a damaged one`,
      );
    const typeflag = String.fromCharCode(header[156]!);
    let size = num(header, 124, 12, 'size');
    const dataStart = pos + BLOCK;
    // Meta headers describe the next member.
    if (typeflag === 'x' || typeflag === 'g' || typeflag === 'L' || typeflag === 'K') {
      if (size > 1024 * 1024)
        throw new ArchiveError('corrupt_tar', 'a tar extended header is larger than 1 MiB');
      if (dataStart + size > buf.length)
        throw new ArchiveError(
          'truncated',
          'the archive is truncated (an extended header runs past the end)',
        );
      const data = buf.subarray(dataStart, dataStart + size);
      if (typeflag === 'x') pax = parsePax(data);
      else if (typeflag === 'L') longName = decodeName(str(data, 0, data.length), 'name');
      else if (typeflag === 'K') longLink = decodeName(str(data, 0, data.length), 'link name');
      // 'g' (global pax header): carries no member names in what Python or GNU tar write; ignored.
      pos = dataStart + padded(size);
      continue;
    }
    let name = longName ?? decodeName(str(header, 0, 100), 'name');
    let linkname = longLink ?? decodeName(str(header, 157, 100), 'link name');
    // As Python's tarfile: an old-style regular entry named "x/" is a directory; directories lose
    // trailing slashes first, then the ustar prefix applies.
    const isDir = typeflag === '5' || (typeflag === '\0' && name.endsWith('/'));
    if (isDir) name = name.replace(/\/+$/, '');
    if (!longName) {
      const prefix = decodeName(str(header, 345, 155), 'name prefix');
      if (prefix) name = `${prefix}/${name}`;
    }
    if (pax) {
      const p = pax.get('path');
      if (p !== undefined) name = isDir ? p.replace(/\/+$/, '') : p;
      const l = pax.get('linkpath');
      if (l !== undefined) linkname = l;
      const s = pax.get('size');
      if (s !== undefined) {
        if (!/^\d+$/.test(s) || Number(s) > Number.MAX_SAFE_INTEGER)
          throw new ArchiveError('corrupt_tar', `invalid pax size for member ${JSON.stringify(name)}`);
        size = Number(s);
      }
      if ([...pax.keys()].some((k) => k.startsWith('GNU.sparse'))) {
        throw new ArchiveError(
          'unsupported_member',
          `member ${JSON.stringify(name)} is a sparse file, which is not supported`,
          name,
        );
      }
    }
    pax = undefined;
    longName = undefined;
    longLink = undefined;
    const mode = num(header, 100, 8, 'mode') & 0o7777;
    const mtime = num(header, 136, 12, 'mtime');
    const shown = JSON.stringify(name);
    let type: TarMemberType;
    switch (typeflag) {
      case '0':
      case '\0':
      case '7':
        type = isDir ? 'dir' : 'file';
        break;
      case '5':
        type = 'dir';
        break;
      case '2':
        type = 'symlink';
        break;
      case '1':
        type = 'hardlink';
        break;
      case '3':
        throw new ArchiveError(
          'unsupported_member',
          `member ${shown} is a character device; only regular files and symlinks are allowed`,
          name,
        );
      case '4':
        throw new ArchiveError(
          'unsupported_member',
          `member ${shown} is a block device; only regular files and symlinks are allowed`,
          name,
        );
      case '6':
        throw new ArchiveError(
          'unsupported_member',
          `member ${shown} is a FIFO (named pipe); only regular files and symlinks are allowed`,
          name,
        );
      case 'S':
        throw new ArchiveError(
          'unsupported_member',
          `member ${shown} is a sparse file, which is not supported`,
          name,
        );
      default:
        throw new ArchiveError(
          'unsupported_member',
          `member ${shown} has the unsupported tar type ${JSON.stringify(typeflag)}`,
          name,
        );
    }
    if (members.length >= limits.maxMembers) {
      throw new ArchiveError('too_many_files', `the archive has more than ${limits.maxMembers} members`);
    }
    if (type !== 'file') {
      // Python's tarfile skips no data for these types; a non-zero size would make readers disagree.
      if (size !== 0)
        throw new ArchiveError(
          'corrupt_tar',
          `${type === 'dir' ? 'directory' : type} member ${shown} declares ${size} bytes of data`,
          name,
        );
      members.push({ name, type, size: 0, mode, mtime, linkname, data: Buffer.alloc(0) });
      pos = dataStart;
      continue;
    }
    if (size > limits.maxFileBytes) {
      throw new ArchiveError(
        'file_too_large',
        `member ${shown} is ${size} bytes, more than the limit of ${limits.maxFileBytes} bytes per file`,
        name,
      );
    }
    if (name !== limits.uncounted) total += size;
    if (total > limits.maxTotalBytes) {
      throw new ArchiveError(
        'total_size_exceeded',
        `the package's files add up to more than the limit of ${limits.maxTotalBytes} bytes`,
        name,
      );
    }
    if (dataStart + size > buf.length)
      throw new ArchiveError(
        'truncated',
        `the archive is truncated (member ${shown} runs past the end)`,
        name,
      );
    members.push({
      name,
      type,
      size,
      mode,
      mtime,
      linkname: '',
      data: buf.subarray(dataStart, dataStart + size),
    });
    pos = dataStart + padded(size);
  }
  if (
    pos < buf.length &&
    !isZeroBlock(Buffer.concat([buf.subarray(pos), Buffer.alloc(BLOCK - (buf.length - pos))]))
  ) {
    throw new ArchiveError('truncated', 'the archive is truncated (it ends inside a header)');
  }
  if (pax || longName || longLink)
    throw new ArchiveError('truncated', 'the archive is truncated (an extended header has no member)');
  return members;
}

// ------------------------------------------------------------------------------------------------
// writer

export interface TarWriteEntry {
  name: string;
  /** Tests may write the kinds the reader refuses (devices, FIFOs) and hard links. */
  type: 'file' | 'symlink' | 'hardlink' | 'dir' | 'chardev' | 'blockdev' | 'fifo';
  data?: Buffer;
  mode?: number;
  mtime?: number;
  linkname?: string;
}

const TYPEFLAGS: Record<TarWriteEntry['type'], string> = {
  file: '0',
  hardlink: '1',
  symlink: '2',
  chardev: '3',
  blockdev: '4',
  dir: '5',
  fifo: '6',
};

function octal(n: number, len: number): string {
  return `${n.toString(8).padStart(len - 1, '0')}\0`;
}

function isAscii(s: string): boolean {
  return /^[\x20-\x7e]*$/.test(s);
}

function paxRecord(key: string, value: string): Buffer {
  const body = ` ${key}=${value}\n`;
  const bodyLen = Buffer.byteLength(body);
  let len = bodyLen + String(bodyLen).length;
  if (String(len).length !== String(len - bodyLen).length) len = bodyLen + String(len).length;
  return Buffer.from(`${len}${body}`, 'utf8');
}

function header(
  name: string,
  typeflag: string,
  size: number,
  mode: number,
  mtime: number,
  linkname: string,
): Buffer {
  const h = Buffer.alloc(BLOCK);
  h.write(name, 0, 100, 'utf8');
  h.write(octal(mode, 8), 100, 'ascii');
  h.write(octal(0, 8), 108, 'ascii');
  h.write(octal(0, 8), 116, 'ascii');
  h.write(octal(size, 12), 124, 'ascii');
  h.write(octal(mtime, 12), 136, 'ascii');
  h.write('        ', 148, 'ascii');
  h.write(typeflag, 156, 'ascii');
  h.write(linkname, 157, 100, 'utf8');
  h.write('ustar\x0000', 257, 'latin1');
  h.write(octal(0, 8), 329, 'ascii');
  h.write(octal(0, 8), 337, 'ascii');
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += h[i]!;
  h.write(`${sum.toString(8).padStart(6, '0')}\0`, 148, 'ascii');
  return h;
}

/** Writes an uncompressed POSIX (pax) tar archive, as Python's tarfile does by default. */
export function writeTar(entries: readonly TarWriteEntry[]): Buffer {
  const out: Buffer[] = [];
  let length = 0;
  const push = (b: Buffer) => {
    out.push(b);
    length += b.length;
  };
  for (const e of entries) {
    const data = e.type === 'file' ? (e.data ?? Buffer.alloc(0)) : Buffer.alloc(0);
    const linkname = e.linkname ?? '';
    const records: Buffer[] = [];
    if (!isAscii(e.name) || Buffer.byteLength(e.name) > 100) records.push(paxRecord('path', e.name));
    if (!isAscii(linkname) || Buffer.byteLength(linkname) > 100)
      records.push(paxRecord('linkpath', linkname));
    if (records.length) {
      const body = Buffer.concat(records);
      push(header('././@PaxHeader', 'x', body.length, 0o644, 0, ''));
      push(body);
      if (body.length % BLOCK) push(Buffer.alloc(BLOCK - (body.length % BLOCK)));
    }
    const shortName = isAscii(e.name) ? e.name.slice(0, 100) : 'pax-name';
    const shortLink = isAscii(linkname) ? linkname.slice(0, 100) : 'pax-link';
    push(header(shortName, TYPEFLAGS[e.type], data.length, e.mode ?? 0o644, e.mtime ?? 0, shortLink));
    if (data.length) {
      push(data);
      if (data.length % BLOCK) push(Buffer.alloc(BLOCK - (data.length % BLOCK)));
    }
  }
  push(Buffer.alloc(2 * BLOCK));
  if (length % RECORD) push(Buffer.alloc(RECORD - (length % RECORD)));
  return Buffer.concat(out, length);
}
