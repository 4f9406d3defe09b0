import type { JobCommands } from './job.handler.js';
import type { WorkspaceVersions } from './workspace-versions.js';

/** For specs of the job handler: a user id and a workspace that has deployment 1 (every file) and no configuration. */
export const testUser = '0d5c2a7e-2b4f-4c3a-8e1d-5f6a7b8c9d01';
export const deployedVersions: WorkspaceVersions = {
  latestDeployment: async () => ({ id: '44444444-4444-4444-8444-444444444444', version: 1 }),
  deploymentHasFile: async () => true,
  latestConfiguration: async () => null,
};

/** Creates a batch job `name` (its own entry point) scheduled every 5 s, overlap `allow`. */
export function createScheduledJob(commands: JobCommands, workspaceId: string, name: string) {
  return commands.upsert({
    workspaceId,
    actor: testUser,
    commandId: `create-${name}`,
    name,
    description: '',
    entryPoint: name,
    kind: 'batch',
    schedule: '*/5 * * * * *',
    overlapPolicy: 'allow',
  });
}
