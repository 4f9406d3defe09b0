import { Body, Controller, Headers, HttpCode, Inject, Param, Post, Req } from '@nestjs/common';
import { z } from 'zod';
import { WEBHOOK_PAYLOAD_MAX_BYTES } from '#libs/contracts';
import { ApiDoc, ApiError, badRequest, parseInput } from '#libs/http';
import { Public, type AuthedRequest } from '../auth/auth.guard.js';
import { Authenticated } from '../auth/authenticated.decorator.js';
import { principalOf } from '../auth/workspace-access.js';
import { ManifestService, type WebhookResult } from './manifest.service.js';

export const webhookBody = z
  .object({ action: z.enum(['enable', 'rotate', 'revoke']).default('enable') })
  .strict();

export const webhookResponse = z.object({
  job_id: z.string().uuid(),
  job_ref: z.string(),
  enabled: z.boolean(),
  webhook_url: z
    .string()
    .nullable()
    .describe('`<public URL>/hooks/<token>`, shown this once (enable, rotate); null after revoke'),
});

export const toWebhookResponse = (r: WebhookResult) => ({
  job_id: r.job.id,
  job_ref: r.job.job_ref ?? r.job.name,
  enabled: r.enabled,
  webhook_url: r.url,
});

/** A posted hook body: JSON (object or array), compact, at most WEBHOOK_PAYLOAD_MAX_BYTES. */
const hookPayload = z.union([z.record(z.string(), z.unknown()), z.array(z.unknown())]);
const idempotencyKey = z.string().min(1).max(100).optional();

/**
 * Webhooks of manifest jobs with a `webhook:` trigger: enable / rotate / revoke (the URL is shown
 * once) and `POST /hooks/<token>`, which starts a run with no other credential.
 */
@Controller()
export class WebhooksController {
  constructor(@Inject(ManifestService) private readonly manifest: ManifestService) {}

  @ApiDoc({
    summary:
      'Enable (409 if there is one), rotate or revoke the webhook of a manifest job with a webhook: trigger; the URL is shown once',
    body: webhookBody,
    response: webhookResponse,
  })
  @Authenticated({ workspace: 'write' })
  @Post('api/v1/workspaces/:ws/scripts/:ref/webhook')
  @HttpCode(201)
  async change(
    @Req() req: AuthedRequest,
    @Param('ws') ws: string,
    @Param('ref') ref: string,
    @Body() body: unknown,
  ) {
    const b = parseInput(webhookBody, body ?? {}, 'body');
    return toWebhookResponse(await this.manifest.changeWebhook(principalOf(req), ws, ref, b.action));
  }

  @ApiDoc({
    summary:
      'Start a run of the job whose webhook this is (trigger webhook); the JSON body reaches the run as RUNWAY_WEBHOOK_PAYLOAD. 404 for unknown or revoked tokens, 413 over the size cap, 429 over the rate',
  })
  @Public()
  @Post('hooks/:token')
  @HttpCode(201)
  async hook(@Param('token') token: string, @Body() body: unknown, @Headers('idempotency-key') key?: string) {
    const k = parseInput(idempotencyKey, key, 'idempotency-key header');
    let payload: string | undefined;
    if (
      body !== undefined &&
      !(typeof body === 'object' && body !== null && Object.keys(body).length === 0)
    ) {
      const parsed = hookPayload.safeParse(body);
      if (!parsed.success) throw badRequest('body: a webhook body is a JSON object or array');
      payload = JSON.stringify(parsed.data);
      const bytes = Buffer.byteLength(payload);
      if (bytes > WEBHOOK_PAYLOAD_MAX_BYTES)
        throw new ApiError(
          413,
          `body: ${bytes} bytes; a webhook body is at most ${WEBHOOK_PAYLOAD_MAX_BYTES}`,
        );
    }
    const run = await this.manifest.hook(token, payload, k);
    return { run_id: run.runId, number: run.number, job_id: run.jobId, job_ref: run.jobRef };
  }
}
