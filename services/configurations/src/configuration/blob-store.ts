import type { Kysely } from 'kysely';
import type { ConfigurationTables } from '../migrations/index.js';

export interface ConfigurationBlob {
  id: string;
  workspaceId: string;
  configurationId: string;
  version: number;
  path: string;
  /** Ciphertext (sealed) when encrypted, else the file as uploaded. */
  content: Buffer;
  keyId: string | null;
}

/** The bytes of configuration files, in the configurations service's own table. */
export class ConfigurationBlobStore {
  private readonly db: Kysely<ConfigurationTables>;
  constructor(db: Kysely<unknown>) {
    this.db = db as Kysely<ConfigurationTables>;
  }

  /** Stores the files of one version, all or nothing. */
  async put(blobs: readonly ConfigurationBlob[]): Promise<void> {
    if (blobs.length === 0) return;
    await this.db
      .insertInto('configuration_blobs')
      .values(
        blobs.map((b) => ({
          id: b.id,
          workspace_id: b.workspaceId,
          configuration_id: b.configurationId,
          version: b.version,
          path: b.path,
          encrypted: b.keyId !== null,
          key_id: b.keyId,
          content: b.content,
        })),
      )
      .execute();
  }

  /** Removes the files of a version that was never recorded (lost a race, failed append). */
  async discard(configurationId: string): Promise<void> {
    await this.db.deleteFrom('configuration_blobs').where('configuration_id', '=', configurationId).execute();
  }

  async get(
    workspaceId: string,
    configurationId: string,
    ids: readonly string[],
  ): Promise<Map<string, ConfigurationBlob>> {
    if (ids.length === 0) return new Map();
    const rows = await this.db
      .selectFrom('configuration_blobs')
      .selectAll()
      .where('workspace_id', '=', workspaceId)
      .where('configuration_id', '=', configurationId)
      .where('id', 'in', ids)
      .execute();
    return new Map(
      rows.map((r) => [
        r.id,
        {
          id: r.id,
          workspaceId: r.workspace_id,
          configurationId: r.configuration_id,
          version: r.version,
          path: r.path,
          content: r.content,
          keyId: r.key_id,
        },
      ]),
    );
  }
}
