import { sql, type Kysely } from 'kysely';
import { mkdirSync, symlinkSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { mapLimit, type BlobStore } from '#libs/blobs';
import { insideDir, writeFileInside } from './materializer.js';
import type { DeploymentWriter } from './service-materializer.js';

interface FileRow {
  path: string;
  type: 'file' | 'symlink';
  sha256: string;
  mode: number;
  link_target: string | null;
}

/**
 * Writes a deployment version's files from the deployments service's read model (`deployment_files`:
 * path, mode, content hash) and its content-addressed blob store.
 */
export function blobDeploymentWriter(db: Kysely<unknown>, blobs: BlobStore): DeploymentWriter {
  return async (dir, workspaceId, deployment) => {
    const files = (
      await sql<FileRow>`
        SELECT path, type, sha256, mode, link_target FROM deployment_files
        WHERE deployment_id = ${deployment.id} AND workspace_id = ${workspaceId}`.execute(db)
    ).rows;
    if (files.length === 0) {
      const exists = await sql<{
        n: number;
      }>`SELECT count(*)::int AS n FROM deployments WHERE id = ${deployment.id} AND workspace_id = ${workspaceId}`.execute(
        db,
      );
      if ((exists.rows[0]?.n ?? 0) === 0)
        throw new Error(`deployment ${deployment.version} (${deployment.id}) not found`);
      return;
    }
    await mapLimit(files, 16, async (f) => {
      if (f.type === 'symlink') {
        const p = insideDir(dir, f.path);
        const target = f.link_target ?? '';
        insideDir(dir, resolve(dirname(p), target).slice(dir.length + 1)); // must stay in the tree
        mkdirSync(dirname(p), { recursive: true, mode: 0o700 });
        symlinkSync(target, p);
        return;
      }
      const data = await blobs.get(workspaceId, f.sha256);
      if (!data)
        throw new Error(
          `the content of ${f.path} (deployment ${deployment.version}) is missing from the blob store`,
        );
      writeFileInside(dir, f.path, data, (Number(f.mode) & 0o111) !== 0 ? 0o755 : 0o644);
    });
  };
}
