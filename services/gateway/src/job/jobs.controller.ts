import { Body, Controller, Headers, HttpCode, Inject, Param, Post, Put, Req } from '@nestjs/common';
import { z } from 'zod';
import { ApiDoc, parseInput } from '#libs/http';
import {
  createJobBodySchema,
  jobSummarySchema,
  setScheduleBodySchema,
} from '../../../../libs/client/src/dashboard.js';
import type { AuthedRequest } from '../auth/auth.guard.js';
import { Authenticated } from '../auth/authenticated.decorator.js';
import { principalOf } from '../auth/workspace-access.js';
import { toJobSummary } from '../dashboard/dashboard.service.js';
import { JobsService } from './jobs.service.js';

const jobId = z.string().uuid();

/** Runway's own job routes for the dashboard: create a job (checked against the deployment), set its schedule. */
@Controller('api/v1/workspaces/:ws/jobs')
export class JobsController {
  constructor(@Inject(JobsService) private readonly jobs: JobsService) {}

  @ApiDoc({
    summary:
      'Create a job; 400 unless the entry point is a file of the latest deployment, 409 when a job has the name',
    body: createJobBodySchema,
    response: jobSummarySchema,
  })
  @Authenticated({ workspace: 'write' })
  @Post()
  @HttpCode(201)
  async create(
    @Req() req: AuthedRequest,
    @Param('ws') ws: string,
    @Body() body: unknown,
    @Headers('idempotency-key') key?: string,
  ) {
    const b = parseInput(createJobBodySchema, body ?? {}, 'body');
    const job = await this.jobs.create(
      principalOf(req),
      ws,
      {
        name: b.name,
        description: b.description,
        entryPoint: b.entry_point,
        kind: b.kind,
        schedule: b.schedule ?? null,
        timezone: b.timezone,
        timeoutSeconds: b.timeout_seconds ?? null,
      },
      key,
    );
    return toJobSummary(job, undefined);
  }

  @ApiDoc({
    summary: "Change (schedule, timezone), clear (schedule: null) or pause/resume (active) a job's schedule",
    body: setScheduleBodySchema,
    response: jobSummarySchema,
  })
  @Authenticated({ workspace: 'write' })
  @Put(':id/schedule')
  async setSchedule(
    @Req() req: AuthedRequest,
    @Param('ws') ws: string,
    @Param('id') id: string,
    @Body() body: unknown,
    @Headers('idempotency-key') key?: string,
  ) {
    const ref = parseInput(jobId, id, 'path.id');
    const b = parseInput(setScheduleBodySchema, body ?? {}, 'body');
    const job = await this.jobs.setSchedule(principalOf(req), ws, ref.toLowerCase(), b, key);
    return toJobSummary(job, await this.jobs.lastRun(job.id));
  }
}
