import type { Kysely } from 'kysely';
import { AggregateTypes, type VersionRef } from '#libs/contracts';
import type { EventStore } from '#libs/eventstore';
import type { SchedulingTables } from '../migrations/index.js';
import {
  deploymentHasPath,
  deploymentPaths,
  latestConfiguration,
  latestDeployment,
} from './read-models/latest-versions.queries.js';
import { latestVersionsProjection } from './read-models/latest-versions.projection.js';

/**
 * What a run request needs to know about the workspace's code and configuration: the latest
 * version of each (a run uses the versions current when it is requested).
 */
export interface WorkspaceVersions {
  latestDeployment(workspaceId: string): Promise<VersionRef | null>;
  /** Whether `path` is a file of that deployment; undefined when it cannot be told. */
  deploymentHasFile(workspaceId: string, deploymentId: string, path: string): Promise<boolean | undefined>;
  latestConfiguration(workspaceId: string): Promise<(VersionRef & { profiles: string[] }) | null>;
  /** Every file path of that deployment (scheduled fires check their entry point); undefined when it cannot be told. */
  deploymentFiles?(workspaceId: string, deploymentId: string): Promise<ReadonlySet<string> | undefined>;
  /** Resolves once what the workspace's deployment and configuration streams hold is readable here (read-your-writes). */
  caughtUp?(workspaceId: string): Promise<void>;
}

/**
 * Scheduling's own read model of the latest versions (projection `latest_versions`). Before the
 * versions of a workspace are read, the projection is awaited up to the workspace's last
 * deployment / configuration commit (one direct get each): a run requested right after a deploy
 * uses that deployment.
 */
export class LatestVersions implements WorkspaceVersions {
  constructor(
    private readonly db: Kysely<SchedulingTables>,
    /** With both: read-your-writes (the store's last commits awaited in the projection); without: as it is. */
    private readonly readYourWrites?: {
      store: EventStore;
      waitForProjection: (name: string, seq: number) => Promise<void>;
    },
  ) {}

  async caughtUp(workspaceId: string): Promise<void> {
    if (!this.readYourWrites) return;
    const { store, waitForProjection } = this.readYourWrites;
    const [d, c] = await Promise.all([
      store.lastSequenceOf({ workspaceId, type: AggregateTypes.deployment, id: workspaceId }),
      store.lastSequenceOf({ workspaceId, type: AggregateTypes.configuration, id: workspaceId }),
    ]);
    const seq = Math.max(d, c);
    if (seq > 0) await waitForProjection(latestVersionsProjection.name, seq);
  }

  latestDeployment(workspaceId: string): Promise<VersionRef | null> {
    return latestDeployment(this.db, workspaceId);
  }

  deploymentHasFile(workspaceId: string, deploymentId: string, path: string): Promise<boolean> {
    return deploymentHasPath(this.db, workspaceId, deploymentId, path);
  }

  deploymentFiles(workspaceId: string, deploymentId: string): Promise<ReadonlySet<string>> {
    return deploymentPaths(this.db, workspaceId, deploymentId);
  }

  latestConfiguration(workspaceId: string): Promise<(VersionRef & { profiles: string[] }) | null> {
    return latestConfiguration(this.db, workspaceId);
  }
}

/**
 * The versions a run request uses, through a WorkspaceVersions: the latest ones (read-your-writes)
 * for a manual / API run; for scheduled fires, with the deployment's files, shared per workspace.
 */
export class RunVersions {
  constructor(private readonly versions: WorkspaceVersions) {}

  /**
   * The workspace's latest deployment (with its files) and configuration for scheduled fires, read at most every
   * 200 ms per workspace (thousands of jobs of one workspace fire at the same second). A fire in
   * the same 200 ms as a new deployment may use the previous one.
   */
  private readonly recentVersions = new Map<
    string,
    {
      at: number;
      value: Promise<
        readonly [
          Awaited<ReturnType<WorkspaceVersions['latestDeployment']>>,
          Awaited<ReturnType<WorkspaceVersions['latestConfiguration']>>,
          ReadonlySet<string> | undefined,
        ]
      >;
    }
  >();

  forFire(workspaceId: string) {
    const now = Date.now();
    const hit = this.recentVersions.get(workspaceId);
    if (hit && now - hit.at < 200) return hit.value;
    const value = this.latest(workspaceId).then(async ([deployment, configuration]) => {
      const files = deployment ? await this.filesOf(workspaceId, deployment.id) : undefined;
      return [deployment, configuration, files] as const;
    });
    this.recentVersions.set(workspaceId, { at: now, value });
    value.catch(() => this.recentVersions.delete(workspaceId));
    if (this.recentVersions.size > 10_000) this.recentVersions.clear();
    return value;
  }

  /** The workspace's latest deployment and configuration, once the read model holds what their streams do. */
  async latest(workspaceId: string) {
    await this.versions.caughtUp?.(workspaceId);
    return Promise.all([
      this.versions.latestDeployment(workspaceId),
      this.versions.latestConfiguration(workspaceId),
    ]);
  }

  /** The files of a deployment, read once per deployment (they never change), the latest few kept. */
  private readonly deploymentFiles = new Map<string, Promise<ReadonlySet<string> | undefined>>();

  private filesOf(workspaceId: string, deploymentId: string): Promise<ReadonlySet<string> | undefined> {
    if (!this.versions.deploymentFiles) return Promise.resolve(undefined);
    let files = this.deploymentFiles.get(deploymentId);
    if (!files) {
      files = this.versions.deploymentFiles(workspaceId, deploymentId);
      files.catch(() => this.deploymentFiles.delete(deploymentId));
      if (this.deploymentFiles.size >= 16)
        this.deploymentFiles.delete(this.deploymentFiles.keys().next().value!);
      this.deploymentFiles.set(deploymentId, files);
    }
    return files;
  }
}
