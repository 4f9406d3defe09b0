import { Controller, Inject } from '@nestjs/common';
import { MessagePattern, Payload } from '@nestjs/microservices';
import {
  JobRpc,
  deleteJobRequest,
  requestRun,
  upsertJobRequest,
  type DeleteJobReply,
  type RequestRunReply,
  type UpsertJobReply,
} from '#libs/contracts';
import { DomainError } from '#libs/eventstore';
import { JobHandler } from './job.handler.js';

function parse<T>(
  schema: {
    safeParse: (v: unknown) => { success: true; data: T } | { success: false; error: { message: string } };
  },
  data: unknown,
): T {
  const r = schema.safeParse(data);
  if (!r.success) throw new DomainError(`invalid request: ${r.error.message}`);
  return r.data;
}

/** Thin: RPC payload → command. */
@Controller()
export class JobController {
  constructor(@Inject(JobHandler) private readonly jobs: JobHandler) {}

  @MessagePattern(JobRpc.upsert)
  upsert(@Payload() data: unknown): Promise<UpsertJobReply> {
    return this.jobs.upsert(parse(upsertJobRequest, data));
  }

  @MessagePattern(JobRpc.delete)
  delete(@Payload() data: unknown): Promise<DeleteJobReply> {
    return this.jobs.delete(parse(deleteJobRequest, data));
  }

  @MessagePattern(JobRpc.requestRun)
  requestRun(@Payload() data: unknown): Promise<RequestRunReply> {
    return this.jobs.requestRun(parse(requestRun, data));
  }
}
