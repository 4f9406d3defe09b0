import { sql, type Kysely } from 'kysely';
import type { NatsConnection } from '#libs/nats';
import { ConfigurationContentStore } from '#libs/configuration-files';
import type { LegacyConfigurationTables } from './index.js';

const PAGE = 200;

/**
 * Moves configuration file bytes from `configuration_blobs` (an install from before contents
 * moved to JetStream) into the configurations object store, under the same ids the events
 * reference, before migration 0002 drops the table. Idempotent: a blob already in the store is
 * kept, so a start interrupted between the move and the drop simply moves again.
 */
export async function moveConfigurationBlobs(
  db: Kysely<unknown>,
  nats: NatsConnection,
  subjectPrefix: string,
  log: (message: string) => void = () => undefined,
  replicas = 1,
): Promise<number> {
  const found = await sql<{ t: string | null }>`SELECT to_regclass('configuration_blobs')::text AS t`.execute(
    db,
  );
  if (!found.rows[0]?.t) return 0;
  const legacy = db.withTables<LegacyConfigurationTables>();
  const store = await ConfigurationContentStore.open(nats, subjectPrefix, { replicas });
  let moved = 0;
  let after = '00000000-0000-0000-0000-000000000000';
  for (;;) {
    const rows = await legacy
      .selectFrom('configuration_blobs')
      .selectAll()
      .where('id', '>', after)
      .orderBy('id')
      .limit(PAGE)
      .execute();
    if (rows.length === 0) break;
    await store.put(
      rows.map((r) => ({
        id: r.id,
        workspaceId: r.workspace_id,
        configurationId: r.configuration_id,
        version: r.version,
        path: r.path,
        content: r.content,
        keyId: r.key_id,
      })),
    );
    moved += rows.length;
    after = rows[rows.length - 1]!.id;
  }
  if (moved > 0) log(`moved ${moved} configuration files from PostgreSQL to the JetStream object store`);
  return moved;
}
