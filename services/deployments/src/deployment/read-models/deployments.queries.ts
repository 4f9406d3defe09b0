import type { Kysely } from 'kysely';
import type { DeploymentsTables } from '../../migrations/index.js';
import { referencedBlobSizes } from './blob-references.queries.js';

/** The deployments read models as other services (the gateway) read them: rows and typed queries, no migrations. */
export type DeploymentsReadModel = DeploymentsTables; // the same type as the service's own handle, so both share these queries
export type DeploymentRow = DeploymentsTables['deployments'];
export type DeploymentFileRow = DeploymentsTables['deployment_files'];
type Db = Kysely<DeploymentsReadModel>;

/** A page of the workspace's versions, newest first, with the total. */
export async function listDeployments(
  db: Db,
  workspaceId: string,
  limit: number,
  offset: number,
): Promise<{ rows: DeploymentRow[]; total: number }> {
  const [rows, count] = await Promise.all([
    db
      .selectFrom('deployments')
      .selectAll()
      .where('workspace_id', '=', workspaceId)
      .orderBy('version', 'desc')
      .limit(limit)
      .offset(offset)
      .execute(),
    db
      .selectFrom('deployments')
      .select((eb) => eb.fn.countAll<string>().as('n'))
      .where('workspace_id', '=', workspaceId)
      .executeTakeFirst(),
  ]);
  return { rows, total: Number(count?.n ?? 0) };
}

export function latestDeployment(db: Db, workspaceId: string): Promise<DeploymentRow | undefined> {
  return db
    .selectFrom('deployments')
    .selectAll()
    .where('workspace_id', '=', workspaceId)
    .orderBy('version', 'desc')
    .limit(1)
    .executeTakeFirst();
}

export function deploymentByVersion(
  db: Db,
  workspaceId: string,
  version: number,
): Promise<DeploymentRow | undefined> {
  return db
    .selectFrom('deployments')
    .selectAll()
    .where('workspace_id', '=', workspaceId)
    .where('version', '=', version)
    .executeTakeFirst();
}

export function deploymentById(db: Db, workspaceId: string, id: string): Promise<DeploymentRow | undefined> {
  return db
    .selectFrom('deployments')
    .selectAll()
    .where('workspace_id', '=', workspaceId)
    .where('id', '=', id)
    .executeTakeFirst();
}

/** Files of a version, in code point order of their paths. */
export function deploymentFiles(db: Db, deploymentId: string): Promise<DeploymentFileRow[]> {
  return db
    .selectFrom('deployment_files')
    .selectAll()
    .where('deployment_id', '=', deploymentId)
    .orderBy(
      (eb) => eb.ref('path'),
      (ob) => ob.collate('C'),
    )
    .execute();
}

/** Which of these blob hashes some version of the workspace already holds (so they exist). */
export async function referencedBlobs(
  db: Db,
  workspaceId: string,
  sha256s: readonly string[],
): Promise<Set<string>> {
  return new Set((await referencedBlobSizes(db, workspaceId, sha256s)).keys());
}
