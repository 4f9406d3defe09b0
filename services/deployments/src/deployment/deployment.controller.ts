import { Controller, Inject } from '@nestjs/common';
import { MessagePattern, Payload } from '@nestjs/microservices';
import {
  blobGcRequest,
  createDeploymentRequest,
  DeploymentRpc,
  type BlobGcReply,
  type CreateDeploymentReply,
} from '#libs/contracts';
import { parseRpcPayload } from '#libs/service-host';
import { DeploymentHandler } from './deployment.handler.js';

/** Commands of the deployments service, as NATS request/reply. */
@Controller()
export class DeploymentController {
  constructor(@Inject(DeploymentHandler) private readonly handler: DeploymentHandler) {}

  @MessagePattern(DeploymentRpc.create)
  create(@Payload() payload: unknown): Promise<CreateDeploymentReply> {
    return this.handler.create(
      parseRpcPayload(createDeploymentRequest, payload, 'create deployment request'),
    );
  }

  @MessagePattern(DeploymentRpc.gc)
  gc(@Payload() payload: unknown): Promise<BlobGcReply> {
    return this.handler.gc(parseRpcPayload(blobGcRequest, payload ?? {}, 'blob sweep request'));
  }
}
