/** Why a package was refused; stable strings that tests and clients may match. */
export type ArchiveErrorCode =
  | 'archive_too_large'
  | 'not_gzip'
  | 'corrupt_gzip'
  | 'decompressed_too_large'
  | 'corrupt_tar'
  | 'truncated'
  | 'too_many_files'
  | 'total_size_exceeded'
  | 'file_too_large'
  | 'absolute_path'
  | 'path_traversal'
  | 'invalid_path'
  | 'duplicate_path'
  | 'path_conflict'
  | 'unexpected_member'
  | 'unsupported_member'
  | 'symlink_escape'
  | 'hardlink_escape'
  | 'missing_manifest'
  | 'invalid_manifest'
  | 'manifest_mismatch';

/**
 * A package (or a file list) that Runway refuses. `message` is precise and meant for the user
 * (the gateway sends it as the 400 `detail`); `member` names the offending archive member.
 */
export class ArchiveError extends Error {
  constructor(
    readonly code: ArchiveErrorCode,
    message: string,
    readonly member?: string,
  ) {
    super(message);
    this.name = 'ArchiveError';
  }
}
