import { Inject, Injectable } from '@nestjs/common';
import { randomUUID } from 'node:crypto';
import { AggregateTypes, ConfigurationCreated, type ConfigurationFile } from '#libs/contracts';
import {
  CommandHandler,
  ConcurrencyError,
  ConflictError,
  KeyedLock,
  type AggregateRef,
  type StoredCommit,
} from '#libs/eventstore';
import { eventsOf } from '#libs/projections';
import { encryptFile } from '#libs/secrets';
import { SERVICE_CONTEXT, type ServiceContext } from '#libs/service-host';
import { Keyring } from '../keyring/keyring.js';
import { ConfigurationContentStore, type ConfigurationBlob } from '#libs/configuration-files';
import {
  configurationDecider,
  isUnchanged,
  type ConfigurationCommand,
  type ConfigurationState,
} from './configuration.decider.js';
import type { ConfigurationEvent } from './configuration.events.js';
import { analyzeConfiguration, type AnalyzedConfiguration, type UploadedFile } from './toml-files.js';

export interface CreateConfigurationInput {
  workspaceId: string;
  /** The user creating it (uuid). */
  actor: string;
  commandId: string;
  /** Archive hash (as the dlt CLI computes it) and size, from the gateway that read the upload. */
  contentHash: string;
  size: number;
  files: readonly UploadedFile[];
  onlyIfChanged: boolean;
}

export interface CreateConfigurationResult {
  configurationId: string;
  version: number;
  /** False when a sync found the latest version unchanged. */
  created: boolean;
  /** Stream sequence to wait for in the read models. */
  seq: number;
}

/** Attempts of one command when other processes keep taking the next version first. */
const MAX_ATTEMPTS = 6;

export function configurationRef(workspaceId: string): AggregateRef {
  return { workspaceId, type: AggregateTypes.configuration, id: workspaceId };
}

const configurationCreated = eventsOf(ConfigurationCreated);

/**
 * The state after `commits` of the configuration aggregate. Only materialize.ts reads it: unused
 * (delete it) once materialization lives in libs/configuration-files.
 */
export function foldConfiguration(commits: readonly StoredCommit[]): ConfigurationState {
  let state = configurationDecider.initialState();
  for (const c of commits)
    for (const e of configurationCreated.select(c.events))
      state = configurationDecider.evolve(state, { type: e.type, data: e.data });
  return state;
}

/**
 * Creates a configuration version: validate the TOML, then, for the version the aggregate is at,
 * store the files (secrets encrypted with the workspace data key, bound to workspace, version
 * and path) and decide and append ConfigurationCreated through the command handler. The files are
 * bound to the version, so a version taken meanwhile by another process (ConcurrencyError, or the
 * decider's "not the next one") discards them and the command starts again at the next version:
 * versions never have gaps. Commands of one workspace take turns in this process.
 */
@Injectable()
export class ConfigurationHandler {
  private readonly locks = new KeyedLock();
  private readonly configurations: CommandHandler<
    ConfigurationState,
    ConfigurationCommand,
    ConfigurationEvent
  >;

  constructor(
    @Inject(SERVICE_CONTEXT) ctx: ServiceContext,
    @Inject(Keyring) private readonly keyring: Keyring,
    @Inject(ConfigurationContentStore) private readonly blobs: ConfigurationContentStore,
  ) {
    // Lost races are retried here, with the files prepared again for the next version. The state
    // read before preparing the files stays in memory: the decision catches up with one direct get.
    this.configurations = new CommandHandler(ctx.store, configurationDecider, {
      maxRetries: 0,
      cache: { maxEntries: 100 },
    });
  }

  create(input: CreateConfigurationInput): Promise<CreateConfigurationResult> {
    const analyzed = analyzeConfiguration(input.files);
    const ref = configurationRef(input.workspaceId);
    return this.locks.run(input.workspaceId, async () => {
      for (let attempt = 1; ; attempt++) {
        const { state } = await this.configurations.load(ref);
        // A sync of unchanged content stores nothing (the command handler still answers a retried
        // command with its original version).
        const unchanged = input.onlyIfChanged && isUnchanged(state, input.contentHash);
        const configurationId = randomUUID();
        const version = state.version + 1;
        const { files, blobs } = unchanged
          ? { files: [], blobs: [] }
          : await this.prepare(input, analyzed, configurationId, version);
        const blobIds = blobs.map((b) => b.id);
        try {
          await this.blobs.put(blobs);
          const r = await this.configurations.handle(
            ref,
            {
              type: 'CreateConfiguration',
              configurationId,
              version,
              contentHash: input.contentHash,
              size: input.size,
              profiles: analyzed.profiles,
              warnings: analyzed.warnings,
              files,
              createdBy: input.actor,
              onlyIfChanged: input.onlyIfChanged,
            },
            { commandId: input.commandId, actor: input.actor },
          );
          // Stored files belong to the version only when this call created it.
          if (r.duplicate || r.events.length === 0) await this.blobs.discard(input.workspaceId, blobIds);
          const created = r.events.find((e) => e.type === 'ConfigurationCreated');
          if (created)
            return {
              configurationId: created.data.configurationId,
              version: created.data.version,
              created: true,
              seq: r.seq,
            };
          const latest = r.state.latest!; // nothing to create: the latest version holds this content
          return {
            configurationId: latest.configurationId,
            version: latest.version,
            created: false,
            seq: r.seq,
          };
        } catch (err) {
          await this.blobs.discard(input.workspaceId, blobIds);
          const lostRace = err instanceof ConcurrencyError || err instanceof ConflictError;
          if (!lostRace || attempt >= MAX_ATTEMPTS) throw err;
          await new Promise((r) => setTimeout(r, Math.random() * 10 * attempt));
        }
      }
    });
  }

  /** The version's files as the event describes them, and their bytes (secrets encrypted) to store. */
  private async prepare(
    input: CreateConfigurationInput,
    analyzed: AnalyzedConfiguration,
    configurationId: string,
    version: number,
  ): Promise<{ files: ConfigurationFile[]; blobs: ConfigurationBlob[] }> {
    const byPath = new Map(input.files.map((f) => [f.path, f.content]));
    const needsKey = analyzed.files.some((f) => f.kind === 'secrets');
    const key = needsKey ? await this.keyring.activeKey(input.workspaceId, input.actor) : undefined;
    const blobs: ConfigurationBlob[] = [];
    const files: ConfigurationFile[] = analyzed.files.map((f) => {
      const content = byPath.get(f.path)!;
      const blobId = randomUUID();
      const secret = f.kind === 'secrets';
      blobs.push({
        id: blobId,
        workspaceId: input.workspaceId,
        configurationId,
        version,
        path: f.path,
        keyId: secret ? key!.keyId : null,
        content: secret
          ? encryptFile(key!.dataKey, content, {
              workspaceId: input.workspaceId,
              ownerId: configurationId,
              version,
              path: f.path,
            })
          : Buffer.from(content),
      });
      return { ...f, encrypted: secret, blobId, keyId: secret ? key!.keyId : null };
    });
    return { files, blobs };
  }
}
