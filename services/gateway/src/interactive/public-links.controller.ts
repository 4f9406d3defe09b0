import { Body, Controller, HttpCode, Inject, Param, Post, Req } from '@nestjs/common';
import { z } from 'zod';
import { ApiDoc, parseInput } from '#libs/http';
import type { AuthedRequest } from '../auth/auth.guard.js';
import { Authenticated } from '../auth/authenticated.decorator.js';
import { principalOf } from '../auth/workspace-access.js';
import { InteractiveService, type PublicLinkResult } from './interactive.service.js';

export const publicLinkBody = z
  .object({
    job: z.string().min(1).max(500).describe('job id or name'),
    action: z.enum(['enable', 'rotate', 'revoke']).default('enable'),
  })
  .strict();

export const publicLinkResponse = z.object({
  job_id: z.string().uuid(),
  job_name: z.string(),
  enabled: z.boolean(),
  public_url: z
    .string()
    .nullable()
    .describe('`<public URL>/p/<token>/`, shown this once (enable, rotate); null after revoke'),
});

export const toPublicLinkResponse = (r: PublicLinkResult) => ({
  job_id: r.job.id,
  job_name: r.job.name,
  enabled: r.enabled,
  public_url: r.url,
});

/** Runway's public link route: enable, rotate or revoke the link of an interactive job. */
@Controller('api/v1/workspaces/:ws/public-links')
export class PublicLinksController {
  constructor(@Inject(InteractiveService) private readonly interactive: InteractiveService) {}

  @ApiDoc({
    summary:
      'Enable (409 if there is one), rotate or revoke the public link of an interactive job; the URL is shown once. Revocation closes open sockets at once.',
    body: publicLinkBody,
    response: publicLinkResponse,
  })
  @Authenticated({ workspace: 'write' })
  @Post()
  @HttpCode(201)
  async change(@Req() req: AuthedRequest, @Param('ws') ws: string, @Body() body: unknown) {
    const b = parseInput(publicLinkBody, body, 'body');
    return toPublicLinkResponse(
      await this.interactive.changePublicLink(principalOf(req), ws, b.job, b.action),
    );
  }
}
