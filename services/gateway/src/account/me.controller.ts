import { Controller, Get, Inject, Param, Req } from '@nestjs/common';
import { ApiDoc } from '#libs/http';
import type { AuthedRequest } from '../auth/auth.guard.js';
import { principalOf } from '../auth/workspace-access.js';
import { AccountsService } from './accounts.service.js';

/**
 * `GET /v1/me`: who the caller is and their default workspace (the oldest one they own, else the
 * oldest they belong to), created on first call. Runway has no organizations: each user has one
 * implicit organization whose id is the user's id.
 */
@Controller('api/v1')
export class MeController {
  constructor(@Inject(AccountsService) private readonly accounts: AccountsService) {}

  @ApiDoc({ summary: 'The caller and their default workspace (created on first call)' })
  @Get('me')
  me(@Req() req: AuthedRequest) {
    return this.accounts.me(principalOf(req));
  }

  @Get('organizations/:id')
  organizationById(@Req() req: AuthedRequest, @Param('id') id: string) {
    return this.accounts.organization(principalOf(req), id);
  }
}
