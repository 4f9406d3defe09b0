import { Objm, StorageType, type ObjectStore } from '@nats-io/obj';
import { z } from 'zod';
import type { NatsConnection } from '#libs/nats';

/**
 * The bytes of configuration files, in a JetStream object store of the configurations service
 * (bucket `runway_configurations`, or `<prefix>_configurations`): primary data lives with the log,
 * not in PostgreSQL, so dropping the database loses nothing (docs/durability.md). Object name
 * `<workspaceId>/<blobId>`, blobId being the file's id in its ConfigurationCreated event. Secrets
 * files are stored only as AES-256-GCM ciphertext (workspace data key, bound to workspace,
 * configuration, version and path). Each object carries where it belongs as metadata, checked on
 * read against the event that references it; the object store checks its SHA-256 digest.
 */
export interface ConfigurationBlob {
  /** The file's id in the event (`files[].blobId`). */
  id: string;
  workspaceId: string;
  configurationId: string;
  version: number;
  path: string;
  /** Ciphertext (sealed) when encrypted, else the file as uploaded. */
  content: Buffer;
  keyId: string | null;
}

export function configurationBucketName(subjectPrefix: string): string {
  return subjectPrefix ? `${subjectPrefix}_configurations` : 'runway_configurations';
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Object metadata as stored (strings only); validated on every read. */
const blobMeta = z.object({
  configurationId: z.string().regex(UUID),
  version: z.string().regex(/^[1-9][0-9]{0,8}$/),
  path: z.string().min(1).max(1024),
  /** '' when the file is not encrypted. */
  keyId: z.string().max(200),
});

export class ConfigurationBlobError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigurationBlobError';
  }
}

export class ConfigurationContentStore {
  private constructor(private readonly os: ObjectStore) {}

  /** Opens the bucket, creating it when missing (file storage, like the EVENTS stream). */
  static async open(
    nc: NatsConnection,
    subjectPrefix: string,
    opts: { replicas?: number } = {},
  ): Promise<ConfigurationContentStore> {
    const os = await new Objm(nc).create(configurationBucketName(subjectPrefix), {
      storage: StorageType.File,
      replicas: opts.replicas ?? 1,
      description: 'Runway configuration files (secrets encrypted)',
    });
    return new ConfigurationContentStore(os);
  }

  static objectName(workspaceId: string, blobId: string): string {
    if (!UUID.test(workspaceId)) throw new Error(`invalid workspace id ${JSON.stringify(workspaceId)}`);
    if (!UUID.test(blobId)) throw new Error(`invalid blob id ${JSON.stringify(blobId)}`);
    return `${workspaceId}/${blobId}`;
  }

  /** Stores the files of one version. A blob already stored under its id is left as it is. */
  async put(blobs: readonly ConfigurationBlob[]): Promise<void> {
    for (const b of blobs) {
      const name = ConfigurationContentStore.objectName(b.workspaceId, b.id);
      const current = await this.os.info(name);
      if (current && !current.deleted) continue;
      await this.os.putBlob(
        {
          name,
          metadata: {
            configurationId: b.configurationId,
            version: String(b.version),
            path: b.path,
            keyId: b.keyId ?? '',
          },
        },
        b.content,
      );
    }
  }

  /** Removes the files of a version that was never recorded (lost a race, failed append). */
  async discard(workspaceId: string, blobIds: readonly string[]): Promise<void> {
    for (const id of blobIds) {
      await this.os.delete(ConfigurationContentStore.objectName(workspaceId, id)).catch(() => undefined);
    }
  }

  /**
   * The stored files among `ids` (absent ones are left out). Throws ConfigurationBlobError when a
   * stored object does not say it belongs to `configurationId` or has a damaged digest.
   */
  async get(
    workspaceId: string,
    configurationId: string,
    ids: readonly string[],
  ): Promise<Map<string, ConfigurationBlob>> {
    const out = new Map<string, ConfigurationBlob>();
    for (const id of ids) {
      const name = ConfigurationContentStore.objectName(workspaceId, id);
      const info = await this.os.info(name);
      if (!info || info.deleted) continue;
      const meta = blobMeta.safeParse(info.metadata ?? {});
      if (!meta.success || meta.data.configurationId !== configurationId)
        throw new ConfigurationBlobError(
          `configuration blob ${name} does not belong to configuration ${configurationId}`,
        );
      let content: Uint8Array | null;
      try {
        content = await this.os.getBlob(name);
      } catch (err) {
        throw new ConfigurationBlobError(
          `configuration blob ${name} is damaged: ${err instanceof Error ? err.message : String(err)}`,
        );
      }
      if (content === null) continue;
      out.set(id, {
        id,
        workspaceId,
        configurationId,
        version: Number(meta.data.version),
        path: meta.data.path,
        content: Buffer.from(content),
        keyId: meta.data.keyId === '' ? null : meta.data.keyId,
      });
    }
    return out;
  }
}
