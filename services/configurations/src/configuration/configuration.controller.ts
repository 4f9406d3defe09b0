import { Controller, Inject } from '@nestjs/common';
import { MessagePattern, Payload } from '@nestjs/microservices';
import {
  ConfigurationRpc,
  createConfigurationRequest,
  decodeConfigurationFiles,
  MalformedUploadError,
  type CreateConfigurationReply,
} from '#libs/contracts';
import { DomainError } from '#libs/eventstore';
import { DecryptionError, openUpload, transportKey } from '#libs/secrets';
import { Keyring } from '../keyring/keyring.js';
import { ConfigurationHandler } from './configuration.handler.js';

/** Commands of the configurations service, as NATS request/reply. */
@Controller()
export class ConfigurationController {
  private readonly uploadKey: Buffer;

  constructor(
    @Inject(ConfigurationHandler) private readonly handler: ConfigurationHandler,
    @Inject(Keyring) keyring: Keyring,
  ) {
    this.uploadKey = transportKey(keyring.master, 'configuration-upload');
  }

  @MessagePattern(ConfigurationRpc.create)
  async create(@Payload() payload: unknown): Promise<CreateConfigurationReply> {
    const parsed = createConfigurationRequest.safeParse(payload);
    if (!parsed.success)
      throw new DomainError(
        `invalid create configuration request: ${parsed.error.issues.map((i) => i.path.join('.')).join(', ')}`,
      );
    const r = parsed.data;
    let files;
    try {
      files = decodeConfigurationFiles(
        openUpload(this.uploadKey, Buffer.from(r.sealedFiles, 'base64'), {
          workspaceId: r.workspaceId,
          commandId: r.commandId,
        }),
      );
    } catch (err) {
      if (err instanceof DecryptionError)
        throw new Error(
          'the configuration upload does not open: the gateway and the configurations service must share the master key (RUNWAY_MASTER_KEY or master.key)',
          { cause: err },
        );
      if (err instanceof MalformedUploadError) throw new DomainError(err.message, 400, 'malformed_upload');
      throw err;
    }
    return this.handler.create({
      workspaceId: r.workspaceId,
      actor: r.actor,
      commandId: r.commandId,
      contentHash: r.contentHash,
      size: r.size,
      onlyIfChanged: r.onlyIfChanged,
      files: files.map((f) => ({ path: f.path, content: Buffer.from(f.content) })),
    });
  }
}
