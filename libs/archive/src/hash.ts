import { createHash, type Hash } from 'node:crypto';
import { compareCodePoints } from './paths.js';

/** SHA-256 as lower-case hex: the content address of a blob. */
export function sha256Hex(data: Uint8Array | string): string {
  return createHash('sha256').update(data).digest('hex');
}

/** SHA3-256 as padded standard base64 (44 characters), as dlt writes its digests. */
export function sha3Base64(data: Uint8Array | string): string {
  return createHash('sha3-256').update(data).digest('base64');
}

/**
 * The package content hash exactly as the dlt CLI computes it (dlt 1.20 `PackageBuilder`
 * → `digest256_tar_stream(stream, filter_file_names=lambda x: x != "manifest.yaml")`):
 * tar members sorted by name (code point order); for each, its name (UTF-8), then its contents
 * if it is a regular file (hard links and symlinks: the name only); SHA3-256; standard base64
 * with padding (44 characters). `manifest.yaml` is left out (reference §5 said it was included;
 * the shipped CLI excludes it, see docs/dlt-runtime-plugin.md §12).
 *
 * Feed it in member-name order: `begin(name)` per member, then `update(chunk)` for a regular
 * file's contents. ContentHasher.forPackage sorts for you when everything is in memory.
 */
export class ContentHasher {
  private readonly h: Hash;
  private last: string | undefined;

  constructor(from?: { h: Hash; last: string | undefined }) {
    this.h = from ? from.h.copy() : createHash('sha3-256');
    this.last = from?.last;
  }

  /** An independent hasher in the same state (to resume from a common prefix later). */
  copy(): ContentHasher {
    return new ContentHasher({ h: this.h, last: this.last });
  }

  /** Starts the next member; names must come in ascending code point order. */
  begin(memberName: string): this {
    if (this.last !== undefined && compareCodePoints(this.last, memberName) >= 0) {
      throw new Error(
        `ContentHasher: ${JSON.stringify(memberName)} does not sort after ${JSON.stringify(this.last)}`,
      );
    }
    this.last = memberName;
    this.h.update(Buffer.from(memberName, 'utf8'));
    return this;
  }

  update(chunk: Uint8Array): this {
    this.h.update(chunk);
    return this;
  }

  digest(): string {
    return this.h.digest('base64');
  }

  /** The hash of in-memory tar members (`manifest.yaml` is skipped here). */
  static forMembers(members: readonly { name: string; type: string; data: Uint8Array }[]): string {
    const sorted = members
      .filter((m) => m.name !== 'manifest.yaml')
      .sort((a, b) => compareCodePoints(a.name, b.name));
    const hasher = new ContentHasher();
    for (const m of sorted) {
      hasher.begin(m.name);
      if (m.type === 'file') hasher.update(m.data);
    }
    return hasher.digest();
  }
}

/**
 * The content hash of a package made of these entries (paths relative to `files/`): what the dlt
 * CLI reports for a package with exactly these files. Symlinks count by name only.
 */
export function packageContentHash(
  entries: readonly { path: string; type: 'file' | 'symlink'; content: Uint8Array }[],
): string {
  return ContentHasher.forMembers(
    entries.map((e) => ({ name: `files/${e.path}`, type: e.type, data: e.content })),
  );
}

/** One entry of the files manifest dlt ≥ 1.26 writes into its packages (`manifest.yaml`). */
export interface FilesManifestItem {
  relative_path: string;
  size_in_bytes: number;
  /** Base64 SHA3-256 of the contents; of the link target for a symlink. */
  sha3_256: string;
  linkname?: string;
}

/**
 * The files manifest of a package as dlt ≥ 1.26's `PackageBuilder` writes it (sorted by path):
 * what `GET …/deployments/{id}/files` returns to dlt-runtime 0.26.1, which diffs it per file.
 */
export function filesManifest(
  entries: readonly { path: string; type: 'file' | 'symlink'; content: Uint8Array; target?: string }[],
): FilesManifestItem[] {
  return entries
    .map((e): FilesManifestItem =>
      e.type === 'symlink'
        ? {
            relative_path: e.path,
            size_in_bytes: 0,
            sha3_256: sha3Base64(e.target ?? ''),
            linkname: e.target ?? '',
          }
        : { relative_path: e.path, size_in_bytes: e.content.length, sha3_256: sha3Base64(e.content) },
    )
    .sort((a, b) => compareCodePoints(a.relative_path, b.relative_path));
}

/**
 * The package content hash of dlt ≥ 1.26 (`compute_package_content_hash`): SHA3-256 over each
 * file's path and base64 digest, in path order; base64. dlt 1.20 hashes the tar members instead
 * (ContentHasher): the two differ for the same files.
 */
export function filesManifestHash(items: readonly FilesManifestItem[]): string {
  const h = createHash('sha3-256');
  for (const i of items) {
    h.update(Buffer.from(i.relative_path, 'utf8'));
    h.update(Buffer.from(i.sha3_256, 'ascii'));
  }
  return h.digest('base64');
}
