import { Body, Controller, Delete, Get, Headers, HttpCode, Inject, Param, Post, Req } from '@nestjs/common';
import { z } from 'zod';
import { roleSchema } from '#libs/contracts';
import { ApiDoc, notFound, parseInput } from '#libs/http';
import { SERVICE_CONTEXT, type ServiceContext } from '#libs/service-host';
import type { AuthedRequest } from '../auth/auth.guard.js';
import { principalOf as principal, WorkspaceAccess, type Need } from '../auth/workspace-access.js';
import { MembersService } from './members.service.js';
import { WorkspaceHandler } from './workspace.handler.js';
import { WorkspaceRepository } from './workspace.repository.js';

const createBody = z.object({ name: z.string().min(1).max(200) }).strict();
const renameBody = z.object({ name: z.string().min(1).max(200) }).strict();
const memberBody = z.object({ email: z.string().email(), role: roleSchema }).strict();

function toResponse(w: { id: string; name: string; owner_id: string; created_at: Date; updated_at: Date }) {
  return {
    id: w.id,
    name: w.name,
    owner_id: w.owner_id,
    date_added: w.created_at.toISOString(),
    date_updated: w.updated_at.toISOString(),
  };
}

@Controller('api/v1/workspaces')
export class WorkspaceController {
  constructor(
    @Inject(WorkspaceRepository) private readonly workspaces: WorkspaceRepository,
    @Inject(MembersService) private readonly memberships: MembersService,
    @Inject(WorkspaceHandler) private readonly handler: WorkspaceHandler,
    @Inject(WorkspaceAccess) private readonly access: WorkspaceAccess,
    @Inject(SERVICE_CONTEXT) private readonly ctx: ServiceContext,
  ) {}

  @Get()
  async list(@Req() req: AuthedRequest) {
    const rows = await this.workspaces.ofUser(principal(req).userId);
    return rows.map((w) => ({ ...toResponse(w), role: w.role }));
  }

  @Post()
  @HttpCode(201)
  async create(@Req() req: AuthedRequest, @Body() body: unknown, @Headers('idempotency-key') key?: string) {
    const input = parseInput(createBody, body, 'body');
    const p = principal(req);
    const r = await this.handler.create(input.name, p.userId, { actor: p.userId, commandId: key });
    await this.ctx.waitForProjections(r.seq);
    return { id: r.workspaceId, name: input.name.trim(), owner_id: p.userId };
  }

  @Get(':ws')
  async get(@Req() req: AuthedRequest, @Param('ws') ws: string) {
    const w = await this.requireMember(req, ws, 'read');
    return toResponse(w);
  }

  @Post(':ws/rename')
  @HttpCode(201)
  async rename(
    @Req() req: AuthedRequest,
    @Param('ws') ws: string,
    @Body() body: unknown,
    @Headers('idempotency-key') key?: string,
  ) {
    await this.requireMember(req, ws, 'owner');
    const input = parseInput(renameBody, body, 'body');
    const p = principal(req);
    await this.handler.handle(
      ws,
      { type: 'RenameWorkspace', name: input.name },
      { actor: p.userId, commandId: key ?? crypto.randomUUID() },
    );
    return { id: ws, name: input.name.trim() };
  }

  @ApiDoc({ summary: 'Members of a workspace with their roles' })
  @Get(':ws/members')
  members(@Req() req: AuthedRequest, @Param('ws') ws: string) {
    return this.memberships.list(req, ws);
  }

  @ApiDoc({ summary: 'Add a member or change their role (owners)', body: memberBody })
  @Post(':ws/members')
  @HttpCode(201)
  addMember(
    @Req() req: AuthedRequest,
    @Param('ws') ws: string,
    @Body() body: unknown,
    @Headers('idempotency-key') key?: string,
  ) {
    return this.memberships.add(req, ws, parseInput(memberBody, body, 'body'), key);
  }

  @ApiDoc({
    summary:
      'Remove a member by user id or email (owners; members may remove themselves; never the last owner)',
  })
  @Delete(':ws/members/:user')
  removeMember(
    @Req() req: AuthedRequest,
    @Param('ws') ws: string,
    @Param('user') user: string,
    @Headers('idempotency-key') key?: string,
  ) {
    return this.memberships.remove(req, ws, user, key);
  }

  private async requireMember(req: AuthedRequest, ws: string, need: Need) {
    await this.access.require(req, ws, need);
    const w = await this.workspaces.byId(ws);
    if (!w) throw notFound(`workspace ${ws} not found`);
    return w;
  }
}
