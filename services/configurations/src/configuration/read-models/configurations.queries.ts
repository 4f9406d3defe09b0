import type { Kysely, Selectable } from 'kysely';
import type { ConfigurationTables } from '../../migrations/index.js';

/** The configurations read models as other services (the gateway) read them: rows and typed queries, no migrations. */
export type ConfigurationsReadModel = Pick<ConfigurationTables, 'configurations' | 'configuration_profiles'>;
export type ConfigurationRow = Selectable<ConfigurationTables['configurations']>;
export type ProfileRow = ConfigurationTables['configuration_profiles'];
type Db = Kysely<ConfigurationsReadModel>;

/** A page of the workspace's versions, newest first, with the total. */
export async function listConfigurations(
  db: Db,
  workspaceId: string,
  limit: number,
  offset: number,
): Promise<{ rows: ConfigurationRow[]; total: number }> {
  const rows = await db
    .selectFrom('configurations')
    .selectAll()
    .where('workspace_id', '=', workspaceId)
    .orderBy('version', 'desc')
    .limit(limit)
    .offset(offset)
    .execute();
  const { n } = await db
    .selectFrom('configurations')
    .select((eb) => eb.fn.countAll<number>().as('n'))
    .where('workspace_id', '=', workspaceId)
    .executeTakeFirstOrThrow();
  return { rows, total: Number(n) };
}

export function latestConfiguration(db: Db, workspaceId: string): Promise<ConfigurationRow | undefined> {
  return db
    .selectFrom('configurations')
    .selectAll()
    .where('workspace_id', '=', workspaceId)
    .orderBy('version', 'desc')
    .limit(1)
    .executeTakeFirst();
}

export function configurationById(
  db: Db,
  workspaceId: string,
  id: string,
): Promise<ConfigurationRow | undefined> {
  return db
    .selectFrom('configurations')
    .selectAll()
    .where('workspace_id', '=', workspaceId)
    .where('id', '=', id)
    .executeTakeFirst();
}

export function configurationByVersion(
  db: Db,
  workspaceId: string,
  version: number,
): Promise<ConfigurationRow | undefined> {
  return db
    .selectFrom('configurations')
    .selectAll()
    .where('workspace_id', '=', workspaceId)
    .where('version', '=', version)
    .executeTakeFirst();
}

/** Per configuration, its profiles with their key names. */
export async function configurationProfiles(
  db: Db,
  configurationIds: readonly string[],
): Promise<Map<string, ProfileRow[]>> {
  const out = new Map<string, ProfileRow[]>();
  if (configurationIds.length === 0) return out;
  const rows = await db
    .selectFrom('configuration_profiles')
    .selectAll()
    .where('configuration_id', 'in', configurationIds)
    .orderBy('profile')
    .execute();
  for (const r of rows) out.set(r.configuration_id, [...(out.get(r.configuration_id) ?? []), r]);
  return out;
}
