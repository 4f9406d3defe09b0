import { DeploymentCreated, DeploymentFilesStaged } from '#libs/contracts';
import type { EventOf } from '#libs/eventstore';

/**
 * The events of the two deployment aggregates. Both are integration events (libs/contracts):
 * scheduling folds DeploymentCreated into its own read model, execution needs a version's file
 * list (DeploymentFilesStaged). The service has no private events.
 */

/** `deployment/<workspaceId>`: the numbered versions of a workspace. */
export const deploymentEvents = [DeploymentCreated] as const;
export type DeploymentEvent = EventOf<typeof deploymentEvents>;

/** `deployment-files/<deploymentId>`: the file list of one version, in parts. */
export const deploymentFilesEvents = [DeploymentFilesStaged] as const;
export type DeploymentFilesEvent = EventOf<typeof deploymentFilesEvents>;
