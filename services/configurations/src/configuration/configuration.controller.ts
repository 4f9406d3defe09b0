import { Controller, Inject } from '@nestjs/common';
import { MessagePattern, Payload } from '@nestjs/microservices';
import { ConfigurationRpc, createConfigurationRequest, type CreateConfigurationReply } from '#libs/contracts';
import { DomainError } from '#libs/eventstore';
import { ConfigurationHandler } from './configuration.handler.js';

/** Commands of the configurations service, as NATS request/reply. */
@Controller()
export class ConfigurationController {
  constructor(@Inject(ConfigurationHandler) private readonly handler: ConfigurationHandler) {}

  @MessagePattern(ConfigurationRpc.create)
  async create(@Payload() payload: unknown): Promise<CreateConfigurationReply> {
    const parsed = createConfigurationRequest.safeParse(payload);
    if (!parsed.success)
      throw new DomainError(
        `invalid create configuration request: ${parsed.error.issues.map((i) => i.path.join('.')).join(', ')}`,
      );
    const r = parsed.data;
    return this.handler.create({
      workspaceId: r.workspaceId,
      actor: r.actor,
      commandId: r.commandId,
      contentHash: r.contentHash,
      size: r.size,
      onlyIfChanged: r.onlyIfChanged,
      files: r.files.map((f) => ({ path: f.path, content: Buffer.from(f.content, 'base64') })),
    });
  }
}
