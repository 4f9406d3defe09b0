import { ConflictError, DomainError, type Decider } from '#libs/eventstore';
import type { ConfigurationFile } from '#libs/contracts';
import type { ConfigurationEvent } from './configuration.events.js';

/**
 * The `configuration` aggregate: one per workspace (id = workspace id), holding its numbered,
 * immutable configuration versions. The handler has already validated the TOML and stored the file
 * bytes (secrets encrypted) under the version it read; the decider checks the version is the next one.
 */
export type ConfigurationCommand = {
  type: 'CreateConfiguration';
  configurationId: string;
  /** The version the handler prepared the files for: must be the next one. */
  version: number;
  contentHash: string;
  size: number;
  profiles: string[];
  warnings: string[];
  files: ConfigurationFile[];
  createdBy: string;
  /** Sync semantics: when the latest version has this content hash, create nothing. */
  onlyIfChanged: boolean;
};

export interface ConfigurationVersionRef {
  configurationId: string;
  version: number;
  contentHash: string;
}

export interface ConfigurationState {
  version: number;
  latest: ConfigurationVersionRef | undefined;
  /** Every version by id, so the files of any version can be found (materialization). */
  versions: ReadonlyMap<
    number,
    {
      configurationId: string;
      contentHash: string;
      files: readonly ConfigurationFile[];
      profiles: readonly string[];
    }
  >;
}

const initialState = (): ConfigurationState => ({ version: 0, latest: undefined, versions: new Map() });

function evolve(state: ConfigurationState, event: ConfigurationEvent): ConfigurationState {
  switch (event.type) {
    case 'ConfigurationCreated': {
      const d = event.data;
      return {
        version: d.version,
        latest: { configurationId: d.configurationId, version: d.version, contentHash: d.contentHash },
        versions: new Map(state.versions).set(d.version, {
          configurationId: d.configurationId,
          contentHash: d.contentHash,
          files: d.files,
          profiles: d.profiles,
        }),
      };
    }
    default: {
      const unknown: never = event.type;
      throw new Error(`unknown event ${String(unknown)}`);
    }
  }
}

/** True when a sync of this content would create nothing. */
export function isUnchanged(state: ConfigurationState, contentHash: string): boolean {
  return state.latest?.contentHash === contentHash;
}

function createConfiguration(command: ConfigurationCommand, state: ConfigurationState): ConfigurationEvent[] {
  if (command.onlyIfChanged && isUnchanged(state, command.contentHash)) return [];
  if (command.version !== state.version + 1) {
    throw new ConflictError(
      `configuration version ${command.version} is not the next one (${state.version + 1})`,
    );
  }
  const paths = new Set<string>();
  for (const f of command.files) {
    if (paths.has(f.path)) throw new DomainError(`${f.path}: appears twice`);
    paths.add(f.path);
    if (f.kind === 'secrets' && (!f.encrypted || f.keyId === null)) {
      throw new DomainError(`${f.path}: a secrets file must be stored encrypted`);
    }
  }
  return [
    {
      type: 'ConfigurationCreated',
      data: {
        configurationId: command.configurationId,
        version: command.version,
        contentHash: command.contentHash,
        fileCount: command.files.length,
        size: command.size,
        profiles: command.profiles,
        warnings: command.warnings,
        files: command.files,
        createdBy: command.createdBy,
      },
    },
  ];
}

function decide(command: ConfigurationCommand, state: ConfigurationState): ConfigurationEvent[] {
  switch (command.type) {
    case 'CreateConfiguration':
      return createConfiguration(command, state);
    default: {
      const unknown: never = command.type;
      throw new Error(`unknown command ${String(unknown)}`);
    }
  }
}

export const configurationDecider: Decider<ConfigurationState, ConfigurationCommand, ConfigurationEvent> = {
  initialState,
  evolve,
  decide,
};
