import type { DeploymentSource } from '#libs/contracts';
import { ConflictError, DomainError, type Decider } from '#libs/eventstore';
import type { DeploymentEvent, DeploymentFilesEvent } from './deployment.events.js';

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
  source: DeploymentSource;
  /** The uploaded requirements.json (blob hash and size), if any. */
  requirements?: { sha256: string; size: number };
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
  /** Every version by deployment id (a retried command finds the version it created). */
  byId: ReadonlyMap<string, DeploymentVersion>;
}

const initialState = (): DeploymentState => ({ version: 0, latest: undefined, byId: new Map() });

function evolve(state: DeploymentState, event: DeploymentEvent): DeploymentState {
  switch (event.type) {
    case 'DeploymentCreated': {
      const d = event.data;
      const version: DeploymentVersion = {
        deploymentId: d.deploymentId,
        version: d.version,
        contentHash: d.contentHash,
        filesDigest: d.filesDigest,
      };
      return { version: d.version, latest: version, byId: new Map(state.byId).set(d.deploymentId, version) };
    }
    default: {
      const unknown: never = event.type;
      throw new Error(`unknown event ${String(unknown)}`);
    }
  }
}

function createDeployment(command: DeploymentCommand, state: DeploymentState): DeploymentEvent[] {
  if (state.byId.has(command.deploymentId)) {
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
        ...(command.requirements ? { requirements: command.requirements } : {}),
      },
    },
  ];
}

function decide(command: DeploymentCommand, state: DeploymentState): DeploymentEvent[] {
  switch (command.type) {
    case 'CreateDeployment':
      return createDeployment(command, state);
    default: {
      const unknown: never = command.type;
      throw new Error(`unknown command ${String(unknown)}`);
    }
  }
}

export const deploymentDecider: Decider<DeploymentState, DeploymentCommand, DeploymentEvent> = {
  initialState,
  evolve,
  decide,
};

// ------------------------------------------------------------------------------------------------

type StagedData = Extract<DeploymentFilesEvent, { type: 'DeploymentFilesStaged' }>['data'];

/** The aggregate `deployment-files/<deploymentId>`: the file list of one version, in parts. */
export type StageFilesCommand = {
  type: 'StageFilesPart';
  deploymentId: string;
  part: number;
  parts: number;
  files: StagedData['files'];
};

export interface StagedFilesState {
  staged: number;
  parts: number | undefined;
}

function evolveFiles(state: StagedFilesState, event: DeploymentFilesEvent): StagedFilesState {
  switch (event.type) {
    case 'DeploymentFilesStaged':
      return { staged: state.staged + 1, parts: event.data.parts };
    default: {
      const unknown: never = event.type;
      throw new Error(`unknown event ${String(unknown)}`);
    }
  }
}

function stageFilesPart(command: StageFilesCommand, state: StagedFilesState): DeploymentFilesEvent[] {
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
}

function decideFiles(command: StageFilesCommand, state: StagedFilesState): DeploymentFilesEvent[] {
  switch (command.type) {
    case 'StageFilesPart':
      return stageFilesPart(command, state);
    default: {
      const unknown: never = command.type;
      throw new Error(`unknown command ${String(unknown)}`);
    }
  }
}

export const deploymentFilesDecider: Decider<StagedFilesState, StageFilesCommand, DeploymentFilesEvent> = {
  initialState: () => ({ staged: 0, parts: undefined }),
  evolve: evolveFiles,
  decide: decideFiles,
};
