import { Controller, Inject } from '@nestjs/common';
import { MessagePattern, Payload } from '@nestjs/microservices';
import {
  blobGcRequest,
  createDeploymentRequest,
  DeploymentRpc,
  type BlobGcReply,
  type CreateDeploymentReply,
} from '#libs/contracts';
import { DomainError } from '#libs/eventstore';
import type { z } from 'zod';
import { DeploymentHandler } from './deployment.handler.js';

function parse<S extends z.ZodType>(schema: S, payload: unknown, what: string): z.infer<S> {
  const r = schema.safeParse(payload);
  if (!r.success)
    throw new DomainError(
      `invalid ${what}: ${r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`,
    );
  return r.data;
}

/** Commands of the deployments service, as NATS request/reply. */
@Controller()
export class DeploymentController {
  constructor(@Inject(DeploymentHandler) private readonly handler: DeploymentHandler) {}

  @MessagePattern(DeploymentRpc.create)
  create(@Payload() payload: unknown): Promise<CreateDeploymentReply> {
    return this.handler.create(parse(createDeploymentRequest, payload, 'create deployment request'));
  }

  @MessagePattern(DeploymentRpc.gc)
  gc(@Payload() payload: unknown): Promise<BlobGcReply> {
    return this.handler.gc(parse(blobGcRequest, payload ?? {}, 'blob sweep request'));
  }
}
