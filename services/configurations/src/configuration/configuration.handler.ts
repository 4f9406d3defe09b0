import { Inject, Injectable } from '@nestjs/common';
import { randomUUID } from 'node:crypto';
import { AggregateTypes, type ConfigurationFile } from '#libs/contracts';
import { ConcurrencyError, fold, type AggregateRef, type StoredCommit } from '#libs/eventstore';
import { encryptFile } from '#libs/secrets';
import { SERVICE_CONTEXT, type ServiceContext } from '#libs/service-host';
import { Keyring } from '../keyring/keyring.js';
import { ConfigurationContentStore, type ConfigurationBlob } from '#libs/configuration-files';
import { configurationDecider, isUnchanged, type ConfigurationState } from './configuration.decider.js';
import { analyzeConfiguration, type UploadedFile } from './toml-files.js';

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

const MAX_ATTEMPTS = 6;

export function configurationRef(workspaceId: string): AggregateRef {
  return { workspaceId, type: AggregateTypes.configuration, id: workspaceId };
}

export function foldConfiguration(commits: readonly StoredCommit[]): ConfigurationState {
  return fold(
    configurationDecider,
    commits.flatMap((c) => c.events.map((e) => ({ type: e.type, data: e.data }) as never)),
  );
}

/**
 * Creates a configuration version: validate the TOML, then, for the version the aggregate is at,
 * store the files (secrets encrypted with the workspace data key, bound to workspace, version
 * and path) and append ConfigurationCreated with optimistic concurrency. A lost race discards
 * the stored files and starts again at the next version, so versions never have gaps.
 */
@Injectable()
export class ConfigurationHandler {
  constructor(
    @Inject(SERVICE_CONTEXT) private readonly ctx: ServiceContext,
    @Inject(Keyring) private readonly keyring: Keyring,
    @Inject(ConfigurationContentStore) private readonly blobs: ConfigurationContentStore,
  ) {}

  async load(
    workspaceId: string,
  ): Promise<{ state: ConfigurationState; lastSeq: number; commits: StoredCommit[] }> {
    const { commits, lastSeq } = await this.ctx.store.read(configurationRef(workspaceId));
    return { state: foldConfiguration(commits), lastSeq, commits };
  }

  async create(input: CreateConfigurationInput): Promise<CreateConfigurationResult> {
    const analyzed = analyzeConfiguration(input.files);
    const ref = configurationRef(input.workspaceId);
    const byPath = new Map(input.files.map((f) => [f.path, f.content]));
    for (let attempt = 1; ; attempt++) {
      const { state, lastSeq, commits } = await this.load(input.workspaceId);
      const previous = commits.find((c) => c.meta.commandId === input.commandId);
      if (previous) {
        const e = previous.events.find((x) => x.type === 'ConfigurationCreated');
        const d = e?.data as { configurationId: string; version: number } | undefined;
        if (d)
          return { configurationId: d.configurationId, version: d.version, created: true, seq: previous.seq };
      }
      if (input.onlyIfChanged && isUnchanged(state, input.contentHash) && state.latest) {
        return {
          configurationId: state.latest.configurationId,
          version: state.latest.version,
          created: false,
          seq: lastSeq,
        };
      }
      const configurationId = randomUUID();
      const version = state.version + 1;
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
      const events = configurationDecider.decide(
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
        state,
      );
      const blobIds = blobs.map((b) => b.id);
      try {
        await this.blobs.put(blobs);
        const res = await this.ctx.store.append(ref, lastSeq, events, {
          commandId: input.commandId,
          actor: input.actor,
        });
        if (!res.duplicate) return { configurationId, version, created: true, seq: res.seq };
        // The same command was stored meanwhile (a retried request): answer with that one.
        await this.blobs.discard(input.workspaceId, blobIds);
        if (attempt >= MAX_ATTEMPTS)
          throw new Error(`command ${input.commandId} was stored but cannot be found`);
      } catch (err) {
        await this.blobs.discard(input.workspaceId, blobIds);
        if (!(err instanceof ConcurrencyError) || attempt >= MAX_ATTEMPTS) throw err;
        await new Promise((r) => setTimeout(r, Math.random() * 10 * attempt));
      }
    }
  }
}
