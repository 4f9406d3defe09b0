import { sql, type Kysely } from 'kysely';
import type { VersionRef } from '#libs/contracts';

/**
 * What a run request needs to know about the workspace's code and configuration: the latest
 * version of each (a run uses the versions current when it is requested). Read from the read
 * models of the deployments and configurations services.
 */
export interface WorkspaceVersions {
  latestDeployment(workspaceId: string): Promise<VersionRef | null>;
  /** Whether `path` is a file of that deployment; undefined when it cannot be told. */
  deploymentHasFile(workspaceId: string, deploymentId: string, path: string): Promise<boolean | undefined>;
  latestConfiguration(workspaceId: string): Promise<(VersionRef & { profiles: string[] }) | null>;
  /** Every file path of that deployment (scheduled fires check their entry point); undefined when it cannot be told. */
  deploymentFiles?(workspaceId: string, deploymentId: string): Promise<ReadonlySet<string> | undefined>;
}

const UNDEFINED_TABLE = '42P01';
const UNDEFINED_COLUMN = '42703';

function missingSchema(err: unknown): boolean {
  const code = (err as { code?: string }).code;
  return code === UNDEFINED_TABLE || code === UNDEFINED_COLUMN;
}

/** Reads the `deployments` / `deployment_files` / `configurations` read models (shared database). */
export class ReadModelWorkspaceVersions implements WorkspaceVersions {
  constructor(private readonly db: Kysely<unknown>) {}

  async latestDeployment(workspaceId: string): Promise<VersionRef | null> {
    try {
      const r = await sql<{ id: string; version: number }>`
        SELECT id, version FROM deployments WHERE workspace_id = ${workspaceId} ORDER BY version DESC LIMIT 1`.execute(
        this.db,
      );
      const row = r.rows[0];
      return row ? { id: row.id, version: Number(row.version) } : null;
    } catch (err) {
      if (missingSchema(err)) return null;
      throw err;
    }
  }

  async deploymentHasFile(
    workspaceId: string,
    deploymentId: string,
    path: string,
  ): Promise<boolean | undefined> {
    const wanted = path.replace(/^(\.\/)+/, '');
    try {
      const r = await sql<{ n: number }>`
        SELECT count(*)::int AS n FROM deployment_files
        WHERE deployment_id = ${deploymentId} AND workspace_id = ${workspaceId} AND path = ${wanted}`.execute(
        this.db,
      );
      return (r.rows[0]?.n ?? 0) > 0;
    } catch (err) {
      if (missingSchema(err)) return undefined;
      throw err;
    }
  }

  async deploymentFiles(workspaceId: string, deploymentId: string): Promise<ReadonlySet<string> | undefined> {
    try {
      const r = await sql<{ path: string }>`
        SELECT path FROM deployment_files WHERE deployment_id = ${deploymentId} AND workspace_id = ${workspaceId}`.execute(
        this.db,
      );
      return new Set(r.rows.map((x) => x.path));
    } catch (err) {
      if (missingSchema(err)) return undefined;
      throw err;
    }
  }

  async latestConfiguration(workspaceId: string): Promise<(VersionRef & { profiles: string[] }) | null> {
    try {
      const r = await sql<{ id: string; version: number; profiles: string[] }>`
        SELECT id, version, profiles FROM configurations WHERE workspace_id = ${workspaceId} ORDER BY version DESC LIMIT 1`.execute(
        this.db,
      );
      const row = r.rows[0];
      return row ? { id: row.id, version: Number(row.version), profiles: row.profiles ?? [] } : null;
    } catch (err) {
      if (missingSchema(err)) return null;
      throw err;
    }
  }
}
