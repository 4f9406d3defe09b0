import type { Kysely } from 'kysely';
import type { DeploymentsReadModel } from './deployments.queries.js';

/** Both the service's own connection and the gateway's view of the read model. */
type DeploymentsDb = Kysely<DeploymentsReadModel>;

/** Most hashes in one `IN (…)` list. */
const CHUNK = 5000;

/**
 * Sizes of the blobs among `hashes` that some version of the workspace references (the sweep never
 * removes those, so they are known to be in the store).
 */
export async function referencedBlobSizes(
  db: DeploymentsDb,
  workspaceId: string,
  hashes: readonly string[],
): Promise<Map<string, number>> {
  const known = new Map<string, number>();
  for (let i = 0; i < hashes.length; i += CHUNK) {
    const rows = await db
      .selectFrom('deployment_files as f')
      .innerJoin('deployments as d', 'd.id', 'f.deployment_id')
      .select(['f.sha256', 'f.size'])
      .distinct()
      .where('f.workspace_id', '=', workspaceId)
      .where('f.type', '=', 'file')
      .where('f.sha256', 'in', hashes.slice(i, i + CHUNK))
      .execute();
    for (const r of rows) known.set(r.sha256, r.size);
  }
  return known;
}

/** Every blob some version of the workspace references (what the blob sweep keeps). */
export async function referencedBlobs(db: DeploymentsDb, workspaceId: string): Promise<Set<string>> {
  const rows = await db
    .selectFrom('deployment_files as f')
    .innerJoin('deployments as d', 'd.id', 'f.deployment_id')
    .select('f.sha256')
    .distinct()
    .where('f.workspace_id', '=', workspaceId)
    .where('f.type', '=', 'file')
    .execute();
  const requirements = await db
    .selectFrom('deployments')
    .select('requirements_sha256')
    .where('workspace_id', '=', workspaceId)
    .where('requirements_sha256', 'is not', null)
    .execute();
  return new Set([
    ...rows.map((r) => r.sha256),
    ...requirements.flatMap((r) => (r.requirements_sha256 ? [r.requirements_sha256] : [])),
  ]);
}
