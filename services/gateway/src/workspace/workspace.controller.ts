import {
  Body,
  Controller,
  Delete,
  Get,
  Headers,
  HttpCode,
  Inject,
  Param,
  Patch,
  Post,
  Req,
} from '@nestjs/common';
import { z } from 'zod';
import { roleSchema } from '#libs/contracts';
import { ApiDoc, parseInput } from '#libs/http';
import type { AuthedRequest } from '../auth/auth.guard.js';
import { Authenticated } from '../auth/authenticated.decorator.js';
import { principalOf as principal } from '../auth/workspace-access.js';
import { WorkspacesService } from './workspaces.service.js';

const createBody = z.object({ name: z.string().min(1).max(200) }).strict();
const renameBody = z.object({ name: z.string().min(1).max(200) }).strict();
export const memberBody = z.object({ email: z.string().email(), role: roleSchema }).strict();
export const roleBody = z.object({ role: roleSchema }).strict();

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
  constructor(@Inject(WorkspacesService) private readonly workspaces: WorkspacesService) {}

  @Get()
  async list(@Req() req: AuthedRequest) {
    const rows = await this.workspaces.mine(principal(req));
    return rows.map((w) => ({ ...toResponse(w), role: w.role }));
  }

  @Post()
  @HttpCode(201)
  async create(@Req() req: AuthedRequest, @Body() body: unknown, @Headers('idempotency-key') key?: string) {
    const input = parseInput(createBody, body, 'body');
    return this.workspaces.create(principal(req), input.name, key);
  }

  @Authenticated({ workspace: 'read' })
  @Get(':ws')
  async get(@Param('ws') ws: string) {
    return toResponse(await this.workspaces.get(ws));
  }

  @Authenticated({ workspace: 'owner' })
  @Post(':ws/rename')
  @HttpCode(201)
  async rename(
    @Req() req: AuthedRequest,
    @Param('ws') ws: string,
    @Body() body: unknown,
    @Headers('idempotency-key') key?: string,
  ) {
    const input = parseInput(renameBody, body, 'body');
    return this.workspaces.rename(principal(req), ws, input.name, key);
  }

  @ApiDoc({ summary: 'Members of a workspace with their roles' })
  @Authenticated({ workspace: 'read' })
  @Get(':ws/members')
  members(@Param('ws') ws: string) {
    return this.workspaces.members(ws);
  }

  @ApiDoc({ summary: 'Add a member or change their role (owners)', body: memberBody })
  @Authenticated({ workspace: 'owner' })
  @Post(':ws/members')
  @HttpCode(201)
  addMember(
    @Req() req: AuthedRequest,
    @Param('ws') ws: string,
    @Body() body: unknown,
    @Headers('idempotency-key') key?: string,
  ) {
    return this.workspaces.addMember(principal(req), ws, parseInput(memberBody, body, 'body'), key);
  }

  @ApiDoc({
    summary: "Change a member's role by user id or email (owners; never demoting the last owner: 409)",
    body: roleBody,
  })
  @Authenticated({ workspace: 'owner' })
  @Patch(':ws/members/:user')
  changeRole(
    @Req() req: AuthedRequest,
    @Param('ws') ws: string,
    @Param('user') user: string,
    @Body() body: unknown,
    @Headers('idempotency-key') key?: string,
  ) {
    return this.workspaces.changeRole(principal(req), ws, user, parseInput(roleBody, body, 'body').role, key);
  }

  @ApiDoc({
    summary:
      'Remove a member by user id or email (owners; members may remove themselves; never the last owner)',
  })
  @Authenticated({ workspace: 'owner', selfNeeds: 'read' })
  @Delete(':ws/members/:user')
  removeMember(
    @Req() req: AuthedRequest,
    @Param('ws') ws: string,
    @Param('user') user: string,
    @Headers('idempotency-key') key?: string,
  ) {
    return this.workspaces.removeMember(principal(req), ws, user, key);
  }
}
