import type { VersionRef } from '#libs/contracts';
import type { EventStore } from '#libs/eventstore';
import type { MasterKey } from '#libs/secrets';
import { materializeConfiguration, type ConfigurationContentStore } from '#libs/configuration-files';
import { writeFileInside, type MaterializedConfig, type RunMaterializer } from './materializer.js';

/** Writes the files of one deployment version into a directory. */
export type DeploymentWriter = (dir: string, workspaceId: string, deployment: VersionRef) => Promise<void>;

/**
 * The materializer of a real installation: configuration files (secrets decrypted here only,
 * mode 0600) through the configurations service's `materializeConfiguration` (files from its object
 * store, decrypted in this process), code files through
 * the deployments service's blob store.
 */
export class ServiceRunMaterializer implements RunMaterializer {
  constructor(
    private readonly deps: { store: EventStore; blobs: ConfigurationContentStore; masterKey: MasterKey },
    private readonly deployments: DeploymentWriter,
    private readonly requirements?: (
      workspaceId: string,
      deployment: VersionRef,
    ) => Promise<string | undefined>,
  ) {}

  deploymentRequirements(workspaceId: string, deployment: VersionRef): Promise<string | undefined> {
    return this.requirements ? this.requirements(workspaceId, deployment) : Promise.resolve(undefined);
  }

  writeDeployment(dir: string, workspaceId: string, deployment: VersionRef): Promise<void> {
    return this.deployments(dir, workspaceId, deployment);
  }

  async writeConfiguration(
    dotDlt: string,
    workspaceId: string,
    configuration: VersionRef,
    profile: string,
  ): Promise<MaterializedConfig> {
    const m = await materializeConfiguration(this.deps, workspaceId, configuration.id, profile);
    for (const f of m.files) writeFileInside(dotDlt, f.path, f.content, f.secret ? 0o600 : 0o644);
    return { profile: m.profile, secretValues: m.secretValues, warnings: m.warnings };
  }
}
