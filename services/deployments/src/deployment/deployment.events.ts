import { DeploymentCreated, DeploymentFilesStaged } from '#libs/contracts';
import type { DomainEvent, EventOf, StoredEvent } from '#libs/eventstore';

/**
 * The events of the two deployment aggregates. Both are integration events (libs/contracts):
 * scheduling folds DeploymentCreated into its own read model, execution needs a version's file
 * list (DeploymentFilesStaged). The service has no private events.
 */

/** `deployment/<workspaceId>`: the numbered versions of a workspace. */
export const deploymentEvents = [DeploymentCreated] as const;
export type DeploymentEvent = EventOf<typeof deploymentEvents>;
export type DeploymentCreatedData = Extract<DeploymentEvent, { type: 'DeploymentCreated' }>['data'];

/** `deployment-files/<deploymentId>`: the file list of one version, in parts. */
export const deploymentFilesEvents = [DeploymentFilesStaged] as const;
export type DeploymentFilesEvent = EventOf<typeof deploymentFilesEvents>;
type DeploymentFilesStagedData = Extract<DeploymentFilesEvent, { type: 'DeploymentFilesStaged' }>['data'];

/** Stored events of these types (the store validated each payload against its definition). */
export const isDeploymentCreated = (
  e: StoredEvent,
): e is StoredEvent<DomainEvent<'DeploymentCreated', DeploymentCreatedData>> =>
  e.type === DeploymentCreated.type;
export const isDeploymentFilesStaged = (
  e: StoredEvent,
): e is StoredEvent<DomainEvent<'DeploymentFilesStaged', DeploymentFilesStagedData>> =>
  e.type === DeploymentFilesStaged.type;
