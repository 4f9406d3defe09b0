import { Inject, Injectable } from '@nestjs/common';
import { randomUUID } from 'node:crypto';
import type { Role } from '#libs/contracts';
import { notFound } from '#libs/http';
import { SERVICE_CONTEXT, type ServiceContext } from '#libs/service-host';
import type { AuthedRequest } from '../auth/auth.guard.js';
import { IdentityRepository } from '../auth/identity.repository.js';
import { WorkspaceAccess } from '../auth/workspace-access.js';
import { WorkspaceHandler } from './workspace.handler.js';
import { WorkspaceRepository } from './workspace.repository.js';

/**
 * Members of a workspace: read by its members, changed by its owners; a member may also leave.
 * The last owner can neither leave nor be removed (the workspace decider refuses with 409).
 */
@Injectable()
export class MembersService {
  constructor(
    @Inject(WorkspaceAccess) private readonly access: WorkspaceAccess,
    @Inject(WorkspaceRepository) private readonly workspaces: WorkspaceRepository,
    @Inject(IdentityRepository) private readonly identities: IdentityRepository,
    @Inject(WorkspaceHandler) private readonly handler: WorkspaceHandler,
    @Inject(SERVICE_CONTEXT) private readonly ctx: ServiceContext,
  ) {}

  async list(req: AuthedRequest, ws: string) {
    await this.access.require(req, ws, 'read');
    const rows = await this.workspaces.members(ws);
    return rows.map((m) => ({
      user_id: m.user_id,
      email: m.email,
      role: m.role,
      date_added: m.added_at.toISOString(),
    }));
  }

  async add(req: AuthedRequest, ws: string, input: { email: string; role: Role }, commandId?: string) {
    const { principal } = await this.access.require(req, ws, 'owner');
    const user = await this.identities.userByEmail(input.email);
    if (!user) throw notFound(`no user with email ${input.email}`);
    const r = await this.handler.handle(
      ws,
      { type: 'AddMember', userId: user.id, role: input.role },
      { actor: principal.userId, commandId: commandId ?? randomUUID() },
    );
    await this.ctx.waitForProjections(r.seq);
    return { user_id: user.id, email: user.email, role: input.role };
  }

  /** `user` is a user id or an email. Their access to the workspace (and open log streams in it) ends. */
  async remove(req: AuthedRequest, ws: string, user: string, commandId?: string) {
    const target = await this.identities.userByIdOrEmail(user);
    const { principal } = await this.access.require(
      req,
      ws,
      target && target.id === req.principal?.userId ? 'read' : 'owner',
    );
    if (!target || !(await this.identities.membership(ws, target.id)))
      throw notFound(`${user} is not a member of workspace ${ws}`);
    const r = await this.handler.handle(
      ws,
      { type: 'RemoveMember', userId: target.id },
      { actor: principal.userId, commandId: commandId ?? randomUUID() },
    );
    await this.ctx.waitForProjections(r.seq);
    return { workspace_id: ws, user_id: target.id, email: target.email, removed: true };
  }
}
