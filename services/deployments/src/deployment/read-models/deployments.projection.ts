import { DeploymentCreated, DeploymentFilesStaged } from '#libs/contracts';
import { defineProjection, eventsOf } from '#libs/projections';
import type { DeploymentsTables } from '../../migrations/index.js';

type FileRow = DeploymentsTables['deployment_files'];
type DeploymentRow = DeploymentsTables['deployments'];

/** Longest `file_names` string kept (the CLI never reads it; a 20,000-file list would be huge). */
export const FILE_NAMES_MAX = 8192;
const ROWS_PER_INSERT = 1000;

const handled = eventsOf(DeploymentFilesStaged, DeploymentCreated);

function byCodePoint(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0; // fine for the summary; exact ordering lives in deployment_files
}

/** `a.py, b/c.py, …` sorted, cut at FILE_NAMES_MAX characters with a count of what is left out. */
export function fileNames(paths: readonly string[]): string {
  const sorted = [...paths].sort(byCodePoint);
  let out = '';
  for (let i = 0; i < sorted.length; i++) {
    const next = i === 0 ? sorted[i]! : `, ${sorted[i]!}`;
    if (out.length + next.length > FILE_NAMES_MAX) return `${out}, … (${sorted.length - i} more)`;
    out += next;
  }
  return out;
}

/**
 * Folds deployment events into `deployments` and `deployment_files`. A batch is applied as a few
 * multi-row inserts: all staged file rows first, then the versions (whose `file_names` summary is
 * computed from those rows). Inserts ignore rows already there, so a replay is harmless.
 */
export const deploymentsProjection = defineProjection<DeploymentsTables>({
  name: 'deployments',
  tables: ['deployments', 'deployment_files'],
  canHandle: handled.types,
  async apply(db, events) {
    const files: FileRow[] = [];
    const created: DeploymentRow[] = [];
    for (const e of handled.select(events)) {
      const ws = e.aggregate.workspaceId;
      if (e.type === 'DeploymentFilesStaged') {
        for (const f of e.data.files) {
          files.push({
            deployment_id: e.data.deploymentId,
            workspace_id: ws,
            path: f.path,
            type: f.type,
            size: f.size,
            sha256: f.sha256,
            mode: f.mode,
            link_target: f.target ?? null,
          });
        }
      } else {
        const d = e.data;
        created.push({
          id: d.deploymentId,
          workspace_id: ws,
          version: d.version,
          content_hash: d.contentHash,
          files_digest: d.filesDigest,
          file_count: d.fileCount,
          size: d.size,
          archive_size: d.archiveSize,
          file_names: '',
          source: d.source,
          created_by: e.actor,
          created_at: new Date(e.time),
          requirements_sha256: d.requirements?.sha256 ?? null,
          requirements_size: d.requirements?.size ?? 0,
        });
      }
    }
    for (let i = 0; i < files.length; i += ROWS_PER_INSERT) {
      await db
        .insertInto('deployment_files')
        .values(files.slice(i, i + ROWS_PER_INSERT))
        .onConflict((oc) => oc.columns(['deployment_id', 'path']).doNothing())
        .execute();
    }
    if (created.length === 0) return;
    for (let i = 0; i < created.length; i += ROWS_PER_INSERT) {
      await db
        .insertInto('deployments')
        .values(created.slice(i, i + ROWS_PER_INSERT))
        .onConflict((oc) => oc.column('id').doNothing())
        .execute();
    }
    // `file_names` (the compatible API's one-string listing), bounded. Read through the query
    // builder, never raw SQL: during a rebuild these tables live in another schema.
    const ids = created.map((c) => c.id);
    const paths = await db
      .selectFrom('deployment_files')
      .select(['deployment_id', 'path'])
      .where('deployment_id', 'in', ids)
      .execute();
    const byDeployment = new Map<string, string[]>();
    for (const r of paths) {
      const list = byDeployment.get(r.deployment_id) ?? [];
      list.push(r.path);
      byDeployment.set(r.deployment_id, list);
    }
    for (const [id, list] of byDeployment) {
      await db
        .updateTable('deployments')
        .set({ file_names: fileNames(list) })
        .where('id', '=', id)
        .execute();
    }
  },
});
