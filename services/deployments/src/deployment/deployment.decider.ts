import { ConflictError, DomainError, type Decider } from '#libs/eventstore';
import type { DeploymentEvent } from '#libs/contracts';

/**
 * The deployment aggregate: ONE per workspace (id = workspace id), so that version numbers
 * 1, 2, 3 … are assigned by optimistic concurrency on a single subject, without gaps.
 */
export type DeploymentCommand = {
  type: 'CreateDeployment';
  deploymentId: string;
  contentHash: string;
  filesDigest: string;
  fileCount: number;
  size: number;
  archiveSize: number;
  fileParts: number;
  source: 'archive' | 'sync';
  /** Create nothing when the latest version holds the same files. */
  onlyIfChanged: boolean;
};

export interface DeploymentVersion {
  deploymentId: string;
  version: number;
  contentHash: string;
  filesDigest: string;
}

export interface DeploymentState {
  version: number;
  latest: DeploymentVersion | undefined;
  ids: ReadonlySet<string>;
}

type Created = Extract<DeploymentEvent, { type: 'DeploymentCreated' }>;

const initialState = (): DeploymentState => ({ version: 0, latest: undefined, ids: new Set() });

function evolve(state: DeploymentState, event: DeploymentEvent): DeploymentState {
  switch (event.type) {
    case 'DeploymentCreated': {
      const d = event.data;
      return {
        version: d.version,
        latest: {
          deploymentId: d.deploymentId,
          version: d.version,
          contentHash: d.contentHash,
          filesDigest: d.filesDigest,
        },
        ids: new Set(state.ids).add(d.deploymentId),
      };
    }
    case 'DeploymentFilesStaged':
      return state; // lives on the deployment-files aggregate
  }
}

function decide(command: DeploymentCommand, state: DeploymentState): Created[] {
  if (state.ids.has(command.deploymentId)) {
    if (state.latest?.deploymentId === command.deploymentId) return [];
    throw new ConflictError(`deployment ${command.deploymentId} already exists`);
  }
  if (command.fileParts < 0 || command.fileCount < 0 || command.size < 0)
    throw new DomainError('invalid deployment: negative counts');
  if (command.fileCount > 0 && command.fileParts === 0)
    throw new DomainError('invalid deployment: files without a staged file list');
  if (command.onlyIfChanged && state.latest && state.latest.filesDigest === command.filesDigest) return [];
  return [
    {
      type: 'DeploymentCreated',
      data: {
        deploymentId: command.deploymentId,
        version: state.version + 1,
        contentHash: command.contentHash,
        filesDigest: command.filesDigest,
        fileCount: command.fileCount,
        size: command.size,
        archiveSize: command.archiveSize,
        fileParts: command.fileParts,
        source: command.source,
      },
    },
  ];
}

export const deploymentDecider: Decider<DeploymentState, DeploymentCommand, DeploymentEvent> = {
  initialState,
  evolve,
  decide,
};

// ------------------------------------------------------------------------------------------------

/** The aggregate `deployment-files/<deploymentId>`: the file list of one version, in parts. */
export type StageFilesCommand = {
  type: 'StageFilesPart';
  deploymentId: string;
  part: number;
  parts: number;
  files: Extract<DeploymentEvent, { type: 'DeploymentFilesStaged' }>['data']['files'];
};

export interface StagedFilesState {
  staged: number;
  parts: number | undefined;
}

type Staged = Extract<DeploymentEvent, { type: 'DeploymentFilesStaged' }>;

export const deploymentFilesDecider: Decider<StagedFilesState, StageFilesCommand, DeploymentEvent> = {
  initialState: () => ({ staged: 0, parts: undefined }),
  evolve: (state, event) =>
    event.type === 'DeploymentFilesStaged' ? { staged: state.staged + 1, parts: event.data.parts } : state,
  decide: (command, state): Staged[] => {
    if (state.parts !== undefined && state.parts !== command.parts) {
      throw new ConflictError(
        `the file list of deployment ${command.deploymentId} was staged with ${state.parts} parts, not ${command.parts}`,
      );
    }
    if (command.part < state.staged) return []; // already staged (a retried command)
    if (command.part > state.staged)
      throw new DomainError(
        `file list part ${command.part} of deployment ${command.deploymentId} comes before part ${state.staged}`,
      );
    if (command.part >= command.parts)
      throw new DomainError(`file list part ${command.part} is beyond ${command.parts} parts`);
    return [
      {
        type: 'DeploymentFilesStaged',
        data: {
          deploymentId: command.deploymentId,
          part: command.part,
          parts: command.parts,
          files: command.files,
        },
      },
    ];
  },
};
