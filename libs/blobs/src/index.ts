import { createHash, randomBytes } from 'node:crypto';
import { headers } from '@nats-io/transport-node';
import {
  jetstream,
  JetStreamApiError,
  jetstreamManager,
  type JetStreamClient,
  type JetStreamManager,
} from '@nats-io/jetstream';
import { Objm, StorageType, type ObjectInfo, type ObjectStore } from '@nats-io/obj';
import type { NatsConnection } from '@nats-io/transport-node';

const CHUNK = 128 * 1024;

/**
 * Content-addressed blob storage on a JetStream object store (one bucket, R1 or R3 like the
 * EVENTS stream). Every blob lives under its workspace: object name `<workspaceId>/<sha256 hex>`,
 * so one tenant can neither read nor probe for another tenant's content, and a file shared by
 * many versions of one workspace is stored once. The object store's own SHA-256 digest is checked
 * against the name on every read. See docs/storage.md.
 */

export interface BlobInfo {
  workspaceId: string;
  sha256: string;
  size: number;
  /** When the blob was (last) written. */
  mtime: Date;
}

export interface BlobStoreOptions {
  /** Bucket name; `runway_blobs` by default, prefixed in tests. */
  bucket?: string;
  replicas?: number;
}

const HEX64 = /^[0-9a-f]{64}$/;
const WS = /^[A-Za-z0-9_-]+$/;

/** The bucket of a deployment: `runway_blobs`, or `<prefix>_blobs` when subjects are prefixed. */
export function blobBucketName(subjectPrefix: string): string {
  return subjectPrefix ? `${subjectPrefix}_blobs` : 'runway_blobs';
}

export class BlobIntegrityError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'BlobIntegrityError';
  }
}

function hexToB64url(hex: string): string {
  return Buffer.from(hex, 'hex').toString('base64url');
}

function digestMatches(info: ObjectInfo, sha256: string): boolean {
  // The object store records `SHA-256=<base64url, padded or not>` of the content.
  const d = info.digest.replace(/^SHA-256=/i, '').replace(/=+$/, '');
  return d === hexToB64url(sha256).replace(/=+$/, '');
}

/** Runs `fn` over `items` with at most `limit` calls in flight; results keep the input order. */
export async function mapLimit<T, R>(
  items: readonly T[],
  limit: number,
  fn: (item: T, index: number) => Promise<R>,
): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!, i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

export class BlobStore {
  private constructor(
    readonly os: ObjectStore,
    readonly bucket: string,
    private readonly jsm: JetStreamManager,
    private readonly js: JetStreamClient,
  ) {}

  /** Opens the bucket, creating it when missing. */
  static async open(nc: NatsConnection, opts: BlobStoreOptions = {}): Promise<BlobStore> {
    const bucket = opts.bucket ?? 'runway_blobs';
    const os = await new Objm(nc).create(bucket, {
      storage: StorageType.File,
      replicas: opts.replicas ?? 1,
      description: 'Runway content-addressed blobs',
    });
    return new BlobStore(os, bucket, await jetstreamManager(nc), jetstream(nc));
  }

  static objectName(workspaceId: string, sha256: string): string {
    if (!WS.test(workspaceId)) throw new Error(`invalid workspace id ${JSON.stringify(workspaceId)}`);
    if (!HEX64.test(sha256)) throw new Error(`invalid sha256 ${JSON.stringify(sha256)}`);
    return `${workspaceId}/${sha256}`;
  }

  private get stream(): string {
    return `OBJ_${this.bucket}`;
  }

  private metaSubject(name: string): string {
    // The object store's naming: base64url of the name, padding kept.
    return `$O.${this.bucket}.M.${Buffer.from(name, 'utf8').toString('base64').replace(/\+/g, '-').replace(/\//g, '_')}`;
  }

  /** The object's metadata record and its stream sequence, read with one direct get. */
  private async rawMeta(name: string): Promise<{ info: ObjectInfo; seq: number } | null> {
    const m = await this.jsm.direct.getMessage(this.stream, { last_by_subj: this.metaSubject(name) });
    if (!m || m.data.length === 0) return null;
    return { info: m.json<ObjectInfo>(), seq: m.seq };
  }

  private async rawInfo(name: string): Promise<ObjectInfo | null> {
    return (await this.rawMeta(name))?.info ?? null;
  }

  /** The stored blob's info, or null when the workspace has no such blob (or it is damaged). */
  async stat(workspaceId: string, sha256: string): Promise<BlobInfo | null> {
    const info = await this.rawInfo(BlobStore.objectName(workspaceId, sha256));
    if (!info || info.deleted || !digestMatches(info, sha256)) return null;
    return { workspaceId, sha256, size: info.size, mtime: new Date(info.mtime) };
  }

  /** The hashes among `sha256s` that the workspace does not hold (deduplicated, input order). */
  async missing(workspaceId: string, sha256s: Iterable<string>, concurrency = 64): Promise<string[]> {
    const unique = [...new Set(sha256s)];
    const present = await mapLimit(unique, concurrency, (s) => this.stat(workspaceId, s));
    return unique.filter((_, i) => present[i] === null);
  }

  /**
   * Stores `data` under its SHA-256 (verified against `expectedSha256` when given). A blob the
   * workspace already holds is not written again. Returns its hash and whether it was written.
   */
  async put(
    workspaceId: string,
    data: Uint8Array,
    expectedSha256?: string,
  ): Promise<{ sha256: string; size: number; created: boolean }> {
    const sha256 = createHash('sha256').update(data).digest('hex');
    if (expectedSha256 !== undefined && expectedSha256 !== sha256) {
      throw new BlobIntegrityError(
        `content does not match its hash: expected sha256 ${expectedSha256}, got ${sha256}`,
      );
    }
    const name = BlobStore.objectName(workspaceId, sha256);
    const current = await this.rawMeta(name);
    if (current && !current.info.deleted && digestMatches(current.info, sha256))
      return { sha256, size: data.length, created: false };
    // Written like the object store client does (chunks, then the metadata record with a subject
    // rollup), minus its extra lookups; the record is published on condition that nobody wrote
    // one since we looked, so two uploads of the same content store it once.
    const nuid = randomBytes(16).toString('base64url');
    const chunkSubject = `$O.${this.bucket}.C.${nuid}`;
    const acks: Promise<unknown>[] = [];
    let chunks = 0;
    for (let off = 0; off < data.length; off += CHUNK) {
      acks.push(this.js.publish(chunkSubject, data.subarray(off, Math.min(off + CHUNK, data.length))));
      chunks++;
    }
    try {
      await Promise.all(acks);
      const info = {
        name,
        description: '',
        options: { max_chunk_size: CHUNK },
        bucket: this.bucket,
        nuid,
        size: data.length,
        chunks,
        mtime: new Date().toISOString(),
        digest: `SHA-256=${Buffer.from(sha256, 'hex').toString('base64url')}=`,
        deleted: false,
      };
      const h = headers();
      h.set('Nats-Rollup', 'sub');
      await this.js.publish(this.metaSubject(name), JSON.stringify(info), {
        headers: h,
        expect: { lastSubjectSequence: current?.seq ?? 0 },
      });
      return { sha256, size: data.length, created: true };
    } catch (err) {
      await this.jsm.streams.purge(this.stream, { filter: chunkSubject }).catch(() => undefined);
      if (err instanceof JetStreamApiError && err.code === 10071)
        return { sha256, size: data.length, created: false }; // stored concurrently
      throw err;
    }
  }

  /**
   * The blob's content, verified, or null when absent. Chunks are read with direct gets (one
   * request per 128 KiB chunk): cheaper than a consumer per object when reading thousands.
   */
  async get(workspaceId: string, sha256: string): Promise<Buffer | null> {
    const name = BlobStore.objectName(workspaceId, sha256);
    const info = await this.rawInfo(name);
    if (!info || info.deleted) return null;
    if (!digestMatches(info, sha256))
      throw new BlobIntegrityError(`blob ${name} is damaged: its digest does not match its name`);
    const chunks: Uint8Array[] = [];
    const subject = `$O.${this.bucket}.C.${info.nuid}`;
    let seq = 0;
    let got = 0;
    while (got < info.size) {
      const m = await this.jsm.direct.getMessage(this.stream, { next_by_subj: subject, seq: seq + 1 });
      if (!m) return null; // replaced or deleted while reading
      chunks.push(m.data);
      got += m.data.length;
      seq = m.seq;
    }
    const data = Buffer.concat(chunks, got);
    if (got !== info.size)
      throw new BlobIntegrityError(`blob ${name} is damaged: ${got} bytes stored, ${info.size} recorded`);
    if (createHash('sha256').update(data).digest('hex') !== sha256)
      throw new BlobIntegrityError(`blob ${name} is damaged: its content does not match its name`);
    return data;
  }

  async delete(workspaceId: string, sha256: string): Promise<void> {
    await this.os.delete(BlobStore.objectName(workspaceId, sha256));
  }

  /** Every blob of one workspace (or of all workspaces). Reads the bucket's whole index. */
  async list(workspaceId?: string): Promise<BlobInfo[]> {
    const all = await this.os.list();
    const out: BlobInfo[] = [];
    for (const info of all) {
      if (info.deleted) continue;
      const slash = info.name.indexOf('/');
      if (slash === -1) continue;
      const ws = info.name.slice(0, slash);
      const sha256 = info.name.slice(slash + 1);
      if (workspaceId !== undefined && ws !== workspaceId) continue;
      if (!HEX64.test(sha256)) continue;
      out.push({ workspaceId: ws, sha256, size: info.size, mtime: new Date(info.mtime) });
    }
    return out;
  }
}
