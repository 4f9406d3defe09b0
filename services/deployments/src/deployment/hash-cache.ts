import { createHash } from 'node:crypto';
import { ContentHasher } from '#libs/archive';
import type { DeploymentFile } from '#libs/contracts';

/**
 * Midstates of the content hash (SHA3 over the sorted files' names and contents), kept in memory
 * so a new version that shares a prefix of its sorted file list with an earlier one only reads
 * and hashes the files after the first difference. A midstate is keyed by a SHA-256 over the
 * (path, type, sha256) entries it covers, which determine the hashed bytes exactly. A miss (a
 * restart, another replica) only costs a full pass.
 */
export class ContentHashCache {
  private readonly states = new Map<string, ContentHasher>();

  constructor(
    private readonly maxEntries = 4096,
    /** A midstate is kept every this many content bytes (and at the end). */
    readonly everyBytes = 1024 * 1024,
  ) {}

  /** keys[i] identifies the first i entries of `files` (in this order) within the workspace. */
  prefixKeys(workspaceId: string, files: readonly DeploymentFile[]): string[] {
    const running = createHash('sha256').update(`${workspaceId}\n`);
    const keys = [running.copy().digest('hex')];
    for (const f of files) {
      running.update(`${f.type}\t${f.sha256}\t${f.path}\n`);
      keys.push(running.copy().digest('hex'));
    }
    return keys;
  }

  /** The longest cached prefix: its length and a hasher to continue from (a fresh one at 0). */
  resume(keys: readonly string[], fresh: () => ContentHasher): { from: number; hasher: ContentHasher } {
    for (let i = keys.length - 1; i > 0; i--) {
      const hit = this.states.get(keys[i]!);
      if (hit) {
        this.states.delete(keys[i]!); // refresh its LRU position
        this.states.set(keys[i]!, hit);
        return { from: i, hasher: hit.copy() };
      }
    }
    return { from: 0, hasher: fresh() };
  }

  remember(key: string, hasher: ContentHasher): void {
    this.states.set(key, hasher.copy());
    while (this.states.size > this.maxEntries) this.states.delete(this.states.keys().next().value!);
  }

  get size(): number {
    return this.states.size;
  }
}

/**
 * The dlt CLI's content hash of `files` (sorted by path): names and contents in order, contents
 * read with `read` (32 reads ahead), resuming from the longest prefix `cache` knows.
 */
export async function hashFiles(
  workspaceId: string,
  files: readonly DeploymentFile[],
  cache: ContentHashCache,
  read: (file: DeploymentFile) => Promise<Uint8Array>,
  readAhead = 32,
): Promise<string> {
  const keys = cache.prefixKeys(workspaceId, files);
  const { from, hasher } = cache.resume(keys, () => new ContentHasher());
  const pending = new Map<number, Promise<Uint8Array | null>>();
  const fetch = (i: number) => {
    const f = files[i]!;
    const p = f.type === 'file' ? read(f) : Promise.resolve(null);
    p.catch(() => undefined); // awaited below; no unhandled rejection meanwhile
    pending.set(i, p);
  };
  for (let i = from; i < Math.min(from + readAhead, files.length); i++) fetch(i);
  let sinceCheckpoint = 0;
  for (let i = from; i < files.length; i++) {
    if (i + readAhead < files.length) fetch(i + readAhead);
    const f = files[i]!;
    const data = await pending.get(i)!;
    pending.delete(i);
    hasher.begin(`files/${f.path}`);
    if (data) {
      hasher.update(data);
      sinceCheckpoint += data.length;
    }
    if (sinceCheckpoint >= cache.everyBytes) {
      cache.remember(keys[i + 1]!, hasher);
      sinceCheckpoint = 0;
    }
  }
  cache.remember(keys[files.length]!, hasher);
  return hasher.digest();
}
