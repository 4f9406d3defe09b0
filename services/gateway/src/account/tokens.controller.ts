import { Body, Controller, Get, HttpCode, Inject, Param, Post, Query, Req } from '@nestjs/common';
import { z } from 'zod';
import { roleSchema } from '#libs/contracts';
import { ApiDoc, parseInput } from '#libs/http';
import type { AuthedRequest } from '../auth/auth.guard.js';
import { Authenticated } from '../auth/authenticated.decorator.js';
import { principalOf } from '../auth/workspace-access.js';
import { AccountsService } from './accounts.service.js';

export const createTokenBody = z
  .object({
    name: z.string().min(1).max(200),
    expires_in_days: z.number().positive().max(3650).optional(),
    expires_at: z.string().datetime({ offset: true }).optional(),
  })
  .strict()
  .refine((b) => !(b.expires_in_days && b.expires_at), 'give expires_in_days or expires_at, not both');
export const createUserBody = z
  .object({
    email: z.string().email().max(320),
    name: z.string().max(200).optional(),
    workspace_id: z.string().uuid().optional(),
    role: roleSchema.optional(),
    /** A local password for dashboard sign-in (checked before the user is created). */
    password: z.string().min(1).max(1000).optional(),
  })
  .strict();
export const disableBody = z.object({ reason: z.string().max(500).optional() }).strict();
export const allTokensQuery = z
  .object({
    user: z.string().min(1).max(320).optional(),
    state: z.enum(['active', 'revoked', 'expired']).optional(),
  })
  .strict();

/** API tokens of the caller, and (for instance admins) every token. */
@Controller('api/v1')
export class TokensController {
  constructor(@Inject(AccountsService) private readonly accounts: AccountsService) {}

  @ApiDoc({ summary: "The caller's API tokens (never their secrets or hashes)" })
  @Get('tokens')
  list(@Req() req: AuthedRequest) {
    return this.accounts.myTokens(principalOf(req));
  }

  @ApiDoc({
    summary: 'Create an API token for the caller (shown once); it expires no later than the token used',
    body: createTokenBody,
  })
  @Post('tokens')
  @HttpCode(201)
  create(@Req() req: AuthedRequest, @Body() body: unknown) {
    return this.accounts.issueOwnToken(principalOf(req), parseInput(createTokenBody, body, 'body'));
  }

  @ApiDoc({ summary: "Revoke a token: the caller's own, or any token for instance admins" })
  @Post('tokens/:id/revoke')
  @HttpCode(201)
  revoke(@Req() req: AuthedRequest, @Param('id') id: string) {
    return this.accounts.revokeToken(principalOf(req), id);
  }

  @ApiDoc({ summary: 'Every token of the instance (instance admins); ?user=<id|email>&state=active' })
  @Authenticated({ admin: true })
  @Get('admin/tokens')
  allTokens(@Req() req: AuthedRequest, @Query() query: unknown) {
    return this.accounts.allTokens(principalOf(req), parseInput(allTokensQuery, query, 'query'));
  }

  @ApiDoc({ summary: 'Revoke any token (instance admins)' })
  @Post('admin/tokens/:id/revoke')
  @HttpCode(201)
  adminRevoke(@Req() req: AuthedRequest, @Param('id') id: string) {
    return this.accounts.revokeToken(principalOf(req), id);
  }
}

/** Users of the instance (instance admins). */
@Authenticated({ admin: true })
@Controller('api/v1/admin/users')
export class UsersController {
  constructor(@Inject(AccountsService) private readonly accounts: AccountsService) {}

  @ApiDoc({ summary: 'Every user of the instance (instance admins)' })
  @Get()
  list() {
    return this.accounts.listUsers();
  }

  @ApiDoc({
    summary: 'Add a user (instance admins); 409 when the email is taken, also under concurrent requests',
    body: createUserBody,
  })
  @Post()
  @HttpCode(201)
  create(@Req() req: AuthedRequest, @Body() body: unknown) {
    return this.accounts.createUser(principalOf(req), parseInput(createUserBody, body, 'body'));
  }

  @ApiDoc({ summary: 'Create a token for a user (instance admins; shown once)', body: createTokenBody })
  @Post(':id/tokens')
  @HttpCode(201)
  createToken(@Req() req: AuthedRequest, @Param('id') id: string, @Body() body: unknown) {
    return this.accounts.issueTokenFor(principalOf(req), id, parseInput(createTokenBody, body, 'body'));
  }

  @ApiDoc({
    summary: 'Disable a user (by id or email): their tokens stop working at once, open log streams end',
    body: disableBody,
  })
  @Post(':id/disable')
  @HttpCode(201)
  disable(@Req() req: AuthedRequest, @Param('id') id: string, @Body() body: unknown) {
    const input = parseInput(disableBody, body ?? {}, 'body');
    return this.accounts.disableUser(principalOf(req), id, input.reason);
  }

  @ApiDoc({ summary: 'Enable a disabled user again' })
  @Post(':id/enable')
  @HttpCode(201)
  enable(@Req() req: AuthedRequest, @Param('id') id: string) {
    return this.accounts.enableUser(principalOf(req), id);
  }
}
