import type { Kysely } from 'kysely';
import type { VersionRef } from '#libs/contracts';
import type { SchedulingTables } from '../../migrations/index.js';

/** The reads of the `latest_versions` read model (its only SQL besides the projection). */

/** The workspace's latest deployment (null: nothing deployed yet). */
export async function latestDeployment(
  db: Kysely<SchedulingTables>,
  workspaceId: string,
): Promise<VersionRef | null> {
  const row = await db
    .selectFrom('latest_versions')
    .select(['deployment_id', 'deployment_version'])
    .where('workspace_id', '=', workspaceId)
    .executeTakeFirst();
  return row?.deployment_id && row.deployment_version !== null
    ? { id: row.deployment_id, version: row.deployment_version }
    : null;
}

/** The workspace's latest configuration and the profiles it defines (null: none uploaded yet). */
export async function latestConfiguration(
  db: Kysely<SchedulingTables>,
  workspaceId: string,
): Promise<(VersionRef & { profiles: string[] }) | null> {
  const row = await db
    .selectFrom('latest_versions')
    .select(['configuration_id', 'configuration_version', 'configuration_profiles'])
    .where('workspace_id', '=', workspaceId)
    .executeTakeFirst();
  return row?.configuration_id && row.configuration_version !== null
    ? {
        id: row.configuration_id,
        version: row.configuration_version,
        profiles: row.configuration_profiles ?? [],
      }
    : null;
}

/** Whether `path` (a leading `./` ignored) is a file of that deployment of the workspace. */
export async function deploymentHasPath(
  db: Kysely<SchedulingTables>,
  workspaceId: string,
  deploymentId: string,
  path: string,
): Promise<boolean> {
  const row = await db
    .selectFrom('deployment_paths')
    .select('path')
    .where('deployment_id', '=', deploymentId)
    .where('workspace_id', '=', workspaceId)
    .where('path', '=', path.replace(/^(\.\/)+/, ''))
    .executeTakeFirst();
  return row !== undefined;
}

/** Every file path of that deployment of the workspace. */
export async function deploymentPaths(
  db: Kysely<SchedulingTables>,
  workspaceId: string,
  deploymentId: string,
): Promise<ReadonlySet<string>> {
  const rows = await db
    .selectFrom('deployment_paths')
    .select('path')
    .where('deployment_id', '=', deploymentId)
    .where('workspace_id', '=', workspaceId)
    .execute();
  return new Set(rows.map((r) => r.path));
}
