import { mkdirSync, symlinkSync } from 'node:fs';
import { z } from 'zod';
import { dirname, resolve } from 'node:path';
import { mapLimit, type BlobStore } from '#libs/blobs';
import {
  AggregateTypes,
  DeploymentCreated,
  DeploymentFilesStaged,
  type DeploymentFile,
  type VersionRef,
} from '#libs/contracts';
import type { EventStore } from '#libs/eventstore';
import { eventsOf } from '#libs/projections';
import { insideDir, writeFileInside } from './materializer.js';
import type { DeploymentWriter } from './service-materializer.js';

const staged = eventsOf(DeploymentFilesStaged);
const created = eventsOf(DeploymentCreated);

/** File lists of this many deployment versions stay in memory (versions never change). */
const CACHED_VERSIONS = 64;

/**
 * A deployment version's file list, from the deployment's own events (events are the exchange
 * between services, tables are not): the `deployment-files/<deploymentId>` aggregate holds it as
 * DeploymentFilesStaged parts, written before the version's DeploymentCreated. An empty list is
 * told apart from an unknown deployment by the workspace's `deployment` aggregate.
 */
export class DeploymentFileLists {
  private readonly cache = new Map<string, readonly DeploymentFile[]>();

  constructor(private readonly store: EventStore) {}

  async files(workspaceId: string, deployment: VersionRef): Promise<readonly DeploymentFile[]> {
    const key = `${workspaceId}/${deployment.id}`;
    const cached = this.cache.get(key);
    if (cached) return cached;
    const { events } = await this.store.read({
      workspaceId,
      type: AggregateTypes.deploymentFiles,
      id: deployment.id,
    });
    const parts = new Map<number, readonly DeploymentFile[]>();
    let expected = 0;
    for (const e of events) {
      if (!staged.is(e)) continue;
      parts.set(e.data.part, e.data.files);
      expected = e.data.parts;
    }
    if (parts.size === 0) await this.mustExist(workspaceId, deployment);
    else if (parts.size < expected)
      throw new Error(`the file list of deployment ${deployment.version} (${deployment.id}) is incomplete`);
    const files = [...parts.entries()].sort(([a], [b]) => a - b).flatMap(([, f]) => f);
    if (this.cache.size >= CACHED_VERSIONS) this.cache.delete(this.cache.keys().next().value!);
    this.cache.set(key, files);
    return files;
  }

  private async mustExist(workspaceId: string, deployment: VersionRef): Promise<void> {
    const { events } = await this.store.read({
      workspaceId,
      type: AggregateTypes.deployment,
      id: workspaceId,
    });
    if (!events.some((e) => created.is(e) && e.data.deploymentId === deployment.id))
      throw new Error(`deployment ${deployment.version} (${deployment.id}) not found`);
  }
}

/**
 * Writes a deployment version's files: the list from its events (DeploymentFileLists), the contents
 * from the workspace's content-addressed blob store.
 */
export function blobDeploymentWriter(store: EventStore, blobs: BlobStore): DeploymentWriter {
  const lists = new DeploymentFileLists(store);
  return async (dir, workspaceId, deployment) => {
    const files = await lists.files(workspaceId, deployment);
    await mapLimit(files, 16, async (f) => {
      if (f.type === 'symlink') {
        const p = insideDir(dir, f.path);
        const target = f.target ?? '';
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
      writeFileInside(dir, f.path, data, (f.mode & 0o111) !== 0 ? 0o755 : 0o644);
    });
  };
}

/**
 * The `requirements.json` uploaded with a deployment version (docs/dependencies.md): the optional
 * `requirements: {sha256, size}` of its DeploymentCreated (written by the upload route), the bytes
 * from the workspace's blob store. Only those two fields are read, with their own schema.
 */
const requirementsRef = z.object({
  deploymentId: z.string(),
  requirements: z.object({ sha256: z.string().regex(/^[0-9a-f]{64}$/), size: z.number().int().min(0) }),
});

export function blobDeploymentRequirements(
  store: EventStore,
  blobs: BlobStore,
): (workspaceId: string, deployment: VersionRef) => Promise<string | undefined> {
  // Versions never change: what a version uploaded is read once per worker process.
  const cache = new Map<string, string | undefined>();
  const remember = (key: string, value: string | undefined) => {
    if (cache.size >= CACHED_VERSIONS) cache.delete(cache.keys().next().value!);
    cache.set(key, value);
    return value;
  };
  return async (workspaceId, deployment) => {
    const key = `${workspaceId}/${deployment.id}`;
    if (cache.has(key)) return cache.get(key);
    const { events } = await store.read({
      workspaceId,
      type: AggregateTypes.deployment,
      id: workspaceId,
    });
    for (const e of events) {
      if (!created.is(e) || e.data.deploymentId !== deployment.id) continue;
      const ref = requirementsRef.safeParse(e.data);
      if (!ref.success) return remember(key, undefined);
      const data = await blobs.get(workspaceId, ref.data.requirements.sha256);
      if (!data)
        throw new Error(
          `the requirements.json of deployment ${deployment.version} is missing from the blob store`,
        );
      return remember(key, data.toString('utf8'));
    }
    return undefined;
  };
}
