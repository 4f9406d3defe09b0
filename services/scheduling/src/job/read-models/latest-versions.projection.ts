import type { QueryCreator } from 'kysely';
import { ConfigurationCreated, DeploymentCreated, DeploymentFilesStaged } from '#libs/contracts';
import { defineProjection, eventsOf } from '#libs/projections';
import type { SchedulingTables } from '../../migrations/index.js';

type Db = QueryCreator<SchedulingTables>;
const handled = eventsOf(DeploymentFilesStaged, DeploymentCreated, ConfigurationCreated);
type Handled = ReturnType<typeof handled.select>[number];
type Of<T extends Handled['type']> = Extract<Handled, { type: T }>;
const ROWS_PER_INSERT = 1000;

async function latestOf(db: Db, workspaceId: string) {
  return db
    .selectFrom('latest_versions')
    .selectAll()
    .where('workspace_id', '=', workspaceId)
    .executeTakeFirst();
}

async function stagePaths(db: Db, stored: Of<'DeploymentFilesStaged'>): Promise<void> {
  const d = stored.data;
  const rows = d.files.map((f) => ({
    deployment_id: d.deploymentId,
    workspace_id: stored.aggregate.workspaceId,
    path: f.path,
  }));
  for (let i = 0; i < rows.length; i += ROWS_PER_INSERT)
    await db
      .insertInto('deployment_paths')
      .values(rows.slice(i, i + ROWS_PER_INSERT))
      .onConflict((oc) => oc.columns(['deployment_id', 'path']).doNothing())
      .execute();
}

async function deploymentCreated(db: Db, stored: Of<'DeploymentCreated'>): Promise<void> {
  const d = stored.data;
  const workspaceId = stored.aggregate.workspaceId;
  const row = await latestOf(db, workspaceId);
  if (row?.deployment_version != null && row.deployment_version >= d.version) return;
  const latest = { deployment_id: d.deploymentId, deployment_version: d.version };
  await db
    .insertInto('latest_versions')
    .values({ workspace_id: workspaceId, ...latest })
    .onConflict((oc) => oc.column('workspace_id').doUpdateSet(latest))
    .execute();
  // Only the latest version's paths are asked for (a run uses the latest deployment).
  if (row?.deployment_id && row.deployment_id !== d.deploymentId)
    await db.deleteFrom('deployment_paths').where('deployment_id', '=', row.deployment_id).execute();
}

async function configurationCreated(db: Db, stored: Of<'ConfigurationCreated'>): Promise<void> {
  const d = stored.data;
  const workspaceId = stored.aggregate.workspaceId;
  const row = await latestOf(db, workspaceId);
  if (row?.configuration_version != null && row.configuration_version >= d.version) return;
  const latest = {
    configuration_id: d.configurationId,
    configuration_version: d.version,
    configuration_profiles: d.profiles,
  };
  await db
    .insertInto('latest_versions')
    .values({ workspace_id: workspaceId, ...latest })
    .onConflict((oc) => oc.column('workspace_id').doUpdateSet(latest))
    .execute();
}

/**
 * `latest_versions` + `deployment_paths`: scheduling's own view of each workspace's latest
 * deployment (with its file paths) and configuration (with its profiles), folded from the
 * deployments and configurations services' integration events. A run request reads it
 * (latest-versions.queries.ts), never those services' tables.
 */
export const latestVersionsProjection = defineProjection<SchedulingTables>({
  name: 'latest_versions',
  tables: ['latest_versions', 'deployment_paths'],
  canHandle: handled.types,
  async apply(db, events) {
    for (const stored of handled.select(events)) {
      switch (stored.type) {
        case 'DeploymentFilesStaged':
          await stagePaths(db, stored);
          break;
        case 'DeploymentCreated':
          await deploymentCreated(db, stored);
          break;
        case 'ConfigurationCreated':
          await configurationCreated(db, stored);
          break;
      }
    }
  },
});
