import { createTwoFilesPatch } from 'diff';
import type { DeploymentDiff } from '../../../../libs/client/src/dashboard.js';

/** Text diffs are made for changed files up to this size on each side. */
export const MAX_DIFF_FILE_BYTES = 256 * 1024;
/** A NUL byte in this many first bytes (or invalid UTF-8) makes a file binary. */
const SNIFF_BYTES = 8 * 1024;

export interface DiffFile {
  path: string;
  type: string;
  size: number;
  sha256: string;
  link_target: string | null;
}

export type ChangedFile = DeploymentDiff['changed'][number];

/** Added, removed and changed paths of two file lists (same path, other content, type or target). */
export function compareFileLists(before: readonly DiffFile[], after: readonly DiffFile[]) {
  const old = new Map(before.map((f) => [f.path, f]));
  const now = new Map(after.map((f) => [f.path, f]));
  const ref = (f: DiffFile) => ({ path: f.path, size: f.size, sha256: f.sha256 });
  const added = after.filter((f) => !old.has(f.path)).map(ref);
  const removed = before.filter((f) => !now.has(f.path)).map(ref);
  const changed: { before: DiffFile; after: DiffFile }[] = [];
  let unchanged = 0;
  for (const f of after) {
    const o = old.get(f.path);
    if (!o) continue;
    if (o.sha256 === f.sha256 && o.type === f.type && o.link_target === f.link_target) unchanged++;
    else changed.push({ before: o, after: f });
  }
  return { added, removed, changed, unchanged };
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** The text of a file, or undefined when it is binary (a NUL byte early on, or not UTF-8). */
export function textOf(data: Uint8Array): string | undefined {
  if (data.subarray(0, SNIFF_BYTES).includes(0)) return undefined;
  try {
    return utf8.decode(data);
  } catch {
    return undefined;
  }
}

/** A unified diff (`--- a/path`, `+++ b/path`, hunks with 3 lines of context). */
export function unifiedDiff(path: string, before: string, after: string): string {
  return createTwoFilesPatch(`a/${path}`, `b/${path}`, before, after, undefined, undefined, { context: 3 })
    .split('\n')
    .filter((l) => !l.startsWith('====='))
    .join('\n');
}
