import { Controller, Inject } from '@nestjs/common';
import { MessagePattern, Payload } from '@nestjs/microservices';
import {
  JobRpc,
  backfillRequest,
  changeBackfillRequest,
  type ChangeBackfillReply,
  deployManifestRequest,
  triggerJobsRequest,
  type BackfillReply,
  type DeployManifestReply,
  type TriggerJobsReply,
  deleteJobRequest,
  publicLinkRequest,
  requestRun,
  wakeJobRequest,
  upsertJobRequest,
  type DeleteJobReply,
  type PublicLinkReply,
  type WebhookReply,
  webhookRequest,
  type WakeJobReply,
  type RequestRunReply,
  type UpsertJobReply,
} from '#libs/contracts';
import { parseRpcPayload } from '#libs/service-host';
import { JobHandler } from './job.handler.js';

/** Thin: RPC payload → command. */
@Controller()
export class JobController {
  constructor(@Inject(JobHandler) private readonly jobs: JobHandler) {}

  @MessagePattern(JobRpc.upsert)
  upsert(@Payload() data: unknown): Promise<UpsertJobReply> {
    return this.jobs.upsert(parseRpcPayload(upsertJobRequest, data));
  }

  @MessagePattern(JobRpc.delete)
  delete(@Payload() data: unknown): Promise<DeleteJobReply> {
    return this.jobs.delete(parseRpcPayload(deleteJobRequest, data));
  }

  @MessagePattern(JobRpc.publicLink)
  publicLink(@Payload() data: unknown): Promise<PublicLinkReply> {
    return this.jobs.publicLink(parseRpcPayload(publicLinkRequest, data));
  }

  @MessagePattern(JobRpc.webhook)
  webhook(@Payload() data: unknown): Promise<WebhookReply> {
    return this.jobs.webhook(parseRpcPayload(webhookRequest, data));
  }

  @MessagePattern(JobRpc.wake)
  wake(@Payload() data: unknown): Promise<WakeJobReply> {
    return this.jobs.wake(parseRpcPayload(wakeJobRequest, data));
  }

  @MessagePattern(JobRpc.deployManifest)
  deployManifest(@Payload() data: unknown): Promise<DeployManifestReply> {
    return this.jobs.manifest.deploy(parseRpcPayload(deployManifestRequest, data));
  }

  @MessagePattern(JobRpc.triggerJobs)
  triggerJobs(@Payload() data: unknown): Promise<TriggerJobsReply> {
    return this.jobs.manifest.trigger(parseRpcPayload(triggerJobsRequest, data));
  }

  @MessagePattern(JobRpc.backfill)
  backfill(@Payload() data: unknown): Promise<BackfillReply> {
    return this.jobs.manifest.backfill(parseRpcPayload(backfillRequest, data));
  }

  @MessagePattern(JobRpc.changeBackfill)
  changeBackfill(@Payload() data: unknown): Promise<ChangeBackfillReply> {
    return this.jobs.manifest.changeBackfill(parseRpcPayload(changeBackfillRequest, data));
  }

  @MessagePattern(JobRpc.requestRun)
  requestRun(@Payload() data: unknown): Promise<RequestRunReply> {
    return this.jobs.requestRun(parseRpcPayload(requestRun, data));
  }
}
