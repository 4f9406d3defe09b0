import { Controller, Get, Inject, Param, Req } from '@nestjs/common';
import { ApiDoc, notFound } from '#libs/http';
import { SERVICE_CONTEXT, type ServiceContext } from '#libs/service-host';
import type { AuthedRequest } from '../auth/auth.guard.js';
import { principalOf } from '../auth/workspace-access.js';
import { WorkspaceHandler } from '../workspace/workspace.handler.js';
import { WorkspaceRepository } from '../workspace/workspace.repository.js';

const iso = (d: Date) => d.toISOString();

/**
 * `GET /v1/me`: who the caller is and their default workspace (the oldest one they own, else the
 * oldest they belong to), created on first call. Runway has no organizations: each user has one
 * implicit organization whose id is the user's id.
 */
@Controller('api/v1')
export class MeController {
  constructor(
    @Inject(WorkspaceRepository) private readonly workspaces: WorkspaceRepository,
    @Inject(WorkspaceHandler) private readonly handler: WorkspaceHandler,
    @Inject(SERVICE_CONTEXT) private readonly ctx: ServiceContext,
  ) {}

  @ApiDoc({ summary: 'The caller and their default workspace (created on first call)' })
  @Get('me')
  async me(@Req() req: AuthedRequest) {
    const p = principalOf(req);
    let mine = await this.workspaces.ofUser(p.userId);
    if (mine.length === 0) {
      const created = await this.handler.create(`${p.email}'s workspace`, p.userId, {
        actor: p.userId,
        commandId: `default-workspace-${p.userId}`,
      });
      await this.ctx.waitForProjections(created.seq);
      mine = await this.workspaces.ofUser(p.userId);
    }
    const ws = mine.find((w) => w.role === 'owner') ?? mine[0]!;
    return {
      user_id: p.userId,
      identity_id: p.userId,
      email: p.email,
      default_organization: this.organization(p.userId, p.email, ws.created_at),
      default_workspace: {
        id: ws.id,
        name: ws.name,
        description: null,
        date_added: iso(ws.created_at),
        date_updated: iso(ws.updated_at),
      },
      workspaces: mine.map((w) => ({ id: w.id, name: w.name, role: w.role })),
    };
  }

  @Get('organizations/:id')
  async organizationById(@Req() req: AuthedRequest, @Param('id') id: string) {
    const p = principalOf(req);
    if (id !== p.userId) throw notFound(`organization ${id} not found`);
    const mine = await this.workspaces.ofUser(p.userId);
    return this.organization(p.userId, p.email, mine[0]?.created_at ?? new Date(0));
  }

  private organization(userId: string, email: string, since: Date) {
    return { id: userId, name: email, description: null, date_added: iso(since), date_updated: iso(since) };
  }
}
