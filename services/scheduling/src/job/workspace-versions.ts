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
