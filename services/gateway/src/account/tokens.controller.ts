import { Body, Controller, Get, HttpCode, Inject, Param, Post, Req } from '@nestjs/common';
import { z } from 'zod';
import { roleSchema } from '#libs/contracts';
import { ApiDoc, forbidden, notFound, parseInput } from '#libs/http';
import { SERVICE_CONTEXT, type ServiceContext } from '#libs/service-host';
import type { AuthedRequest } from '../auth/auth.guard.js';
import { IdentityRepository } from '../auth/identity.repository.js';
import { principalOf } from '../auth/workspace-access.js';
import { UserHandler } from '../user/user.handler.js';
import { WorkspaceHandler } from '../workspace/workspace.handler.js';

const createTokenBody = z
  .object({
    name: z.string().min(1).max(200),
    expires_in_days: z.number().positive().max(3650).optional(),
    expires_at: z.string().datetime({ offset: true }).optional(),
  })
  .strict()
  .refine((b) => !(b.expires_in_days && b.expires_at), 'give expires_in_days or expires_at, not both');
const createUserBody = z
  .object({
    email: z.string().email().max(320),
    name: z.string().max(200).optional(),
    workspace_id: z.string().uuid().optional(),
    role: roleSchema.optional(),
  })
  .strict();

function expiry(b: { expires_in_days?: number; expires_at?: string }): Date | null {
  if (b.expires_in_days) return new Date(Date.now() + b.expires_in_days * 86_400_000);
  if (b.expires_at) return new Date(b.expires_at);
  return null;
}

const tokenView = (t: {
  id: string;
  name: string;
  created_at: Date;
  expires_at: Date | null;
  revoked_at: Date | null;
}) => ({
  id: t.id,
  name: t.name,
  date_added: t.created_at.toISOString(),
  expires_at: t.expires_at?.toISOString() ?? null,
  revoked_at: t.revoked_at?.toISOString() ?? null,
  state: t.revoked_at
    ? 'revoked'
    : t.expires_at && t.expires_at.getTime() <= Date.now()
      ? 'expired'
      : 'active',
});

/** API tokens of the caller, and (for instance admins) users and their tokens. */
@Controller('api/v1')
export class TokensController {
  constructor(
    @Inject(IdentityRepository) private readonly identities: IdentityRepository,
    @Inject(UserHandler) private readonly users: UserHandler,
    @Inject(WorkspaceHandler) private readonly workspaces: WorkspaceHandler,
    @Inject(SERVICE_CONTEXT) private readonly ctx: ServiceContext,
  ) {}

  @Get('tokens')
  async list(@Req() req: AuthedRequest) {
    return { items: (await this.identities.tokensOf(principalOf(req).userId)).map(tokenView) };
  }

  @ApiDoc({ summary: 'Create an API token for the caller (shown once)', body: createTokenBody })
  @Post('tokens')
  @HttpCode(201)
  async create(@Req() req: AuthedRequest, @Body() body: unknown) {
    const p = principalOf(req);
    return this.issue(p.userId, parseInput(createTokenBody, body, 'body'), p.userId);
  }

  @Post('tokens/:id/revoke')
  @HttpCode(201)
  async revoke(@Req() req: AuthedRequest, @Param('id') id: string) {
    const p = principalOf(req);
    const t = await this.identities.tokenById(id);
    const admin = await this.isAdmin(p.userId);
    if (!t || (t.user_id !== p.userId && !admin)) throw notFound(`token ${id} not found`);
    const r = await this.users.revokeToken(t.user_id, id, p.userId);
    await this.ctx.waitForProjections(r.seq);
    return tokenView((await this.identities.tokenById(id))!);
  }

  @Get('admin/users')
  async listUsers(@Req() req: AuthedRequest) {
    await this.requireAdmin(req);
    const rows = await this.identities.listUsers();
    return {
      items: rows.map((u) => ({
        id: u.id,
        email: u.email,
        name: u.name,
        admin: u.is_admin,
        date_added: u.created_at.toISOString(),
      })),
    };
  }

  /** Adds a user (optionally as a member of a workspace). */
  @ApiDoc({ summary: 'Add a user (instance admins)', body: createUserBody })
  @Post('admin/users')
  @HttpCode(201)
  async createUser(@Req() req: AuthedRequest, @Body() body: unknown) {
    const p = await this.requireAdmin(req);
    const input = parseInput(createUserBody, body, 'body');
    if (await this.identities.userByEmail(input.email))
      throw forbidden(`a user with email ${input.email} already exists`);
    if (input.workspace_id && !(await this.identities.membership(input.workspace_id, p.userId))) {
      throw notFound(`workspace ${input.workspace_id} not found`);
    }
    const { userId, seq } = await this.users.register(input.email, input.name ?? input.email, p.userId);
    let last = seq;
    if (input.workspace_id) {
      const r = await this.workspaces.handle(
        input.workspace_id,
        { type: 'AddMember', userId, role: input.role ?? 'member' },
        { commandId: `add-${input.workspace_id}-${userId}`, actor: p.userId },
      );
      last = Math.max(last, r.seq);
    }
    await this.ctx.waitForProjections(last);
    return {
      id: userId,
      email: input.email.toLowerCase(),
      workspace_id: input.workspace_id ?? null,
      role: input.workspace_id ? (input.role ?? 'member') : null,
    };
  }

  @Post('admin/users/:id/tokens')
  @HttpCode(201)
  async createUserToken(@Req() req: AuthedRequest, @Param('id') id: string, @Body() body: unknown) {
    const p = await this.requireAdmin(req);
    const input = parseInput(createTokenBody, body, 'body');
    const user = z.string().uuid().safeParse(id).success
      ? await this.identities.userById(id)
      : await this.identities.userByEmail(id);
    if (!user) throw notFound(`user ${id} not found`);
    return this.issue(user.id, input, p.userId);
  }

  private async issue(
    userId: string,
    input: { name: string; expires_in_days?: number; expires_at?: string },
    actor: string,
  ) {
    const t = await this.users.issueToken(userId, input.name, expiry(input), actor);
    await this.ctx.waitForProjections(t.seq);
    const row = await this.identities.tokenById(t.tokenId);
    return { ...tokenView(row!), token: t.token, user_id: userId };
  }

  private async isAdmin(userId: string): Promise<boolean> {
    return (await this.identities.userById(userId))?.is_admin ?? false;
  }

  private async requireAdmin(req: AuthedRequest) {
    const p = principalOf(req);
    if (!(await this.isAdmin(p.userId)))
      throw forbidden('permission denied: only an instance administrator can do this');
    return p;
  }
}
