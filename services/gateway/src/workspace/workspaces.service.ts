import { Inject, Injectable } from '@nestjs/common';
import { randomUUID } from 'node:crypto';
import type { Role } from '#libs/contracts';
import { notFound } from '#libs/http';
import { SERVICE_CONTEXT, type ServiceContext } from '#libs/service-host';
import type { Principal } from '../auth/authenticator.js';
import { IdentityRepository } from '../auth/identity.repository.js';
import { WorkspaceHandler } from './workspace.handler.js';
import { WorkspaceRepository } from './workspace.repository.js';

/**
 * Workspaces and their members, the one application service behind the REST routes and the gRPC
 * methods (who may call what is declared beside each route and method). The last owner can
 * neither leave nor be removed (the workspace decider refuses with 409).
 */
@Injectable()
export class WorkspacesService {
  constructor(
    @Inject(WorkspaceRepository) private readonly workspaces: WorkspaceRepository,
    @Inject(IdentityRepository) private readonly identities: IdentityRepository,
    @Inject(WorkspaceHandler) private readonly handler: WorkspaceHandler,
    @Inject(SERVICE_CONTEXT) private readonly ctx: ServiceContext,
  ) {}

  /** The caller's workspaces with their role, oldest first. */
  mine(p: Principal) {
    return this.workspaces.ofUser(p.userId);
  }

  async create(p: Principal, name: string, commandId?: string) {
    const r = await this.handler.create(name, p.userId, { actor: p.userId, commandId });
    await this.ctx.waitForProjections(r.seq);
    return { id: r.workspaceId, name: name.trim(), owner_id: p.userId };
  }

  async get(ws: string) {
    const w = await this.workspaces.byId(ws);
    if (!w) throw notFound(`workspace ${ws} not found`);
    return w;
  }

  async rename(p: Principal, ws: string, name: string, commandId?: string) {
    await this.get(ws);
    await this.handler.handle(
      ws,
      { type: 'RenameWorkspace', name },
      { actor: p.userId, commandId: commandId ?? randomUUID() },
    );
    return { id: ws, name: name.trim() };
  }

  async members(ws: string) {
    const rows = await this.workspaces.members(ws);
    return rows.map((m) => ({
      user_id: m.user_id,
      email: m.email,
      role: m.role,
      date_added: m.added_at.toISOString(),
    }));
  }

  async addMember(p: Principal, ws: string, input: { email: string; role: Role }, commandId?: string) {
    const user = await this.identities.userByEmail(input.email);
    if (!user) throw notFound(`no user with email ${input.email}`);
    const r = await this.handler.handle(
      ws,
      { type: 'AddMember', userId: user.id, role: input.role },
      { actor: p.userId, commandId: commandId ?? randomUUID() },
    );
    await this.ctx.waitForProjections(r.seq);
    return { user_id: user.id, email: user.email, role: input.role };
  }

  /** `user` is a user id or an email; 404 unless a member; the last owner keeps the role (409). */
  async changeRole(p: Principal, ws: string, user: string, role: Role, commandId?: string) {
    const target = await this.identities.userByIdOrEmail(user);
    if (!target || !(await this.identities.membership(ws, target.id)))
      throw notFound(`${user} is not a member of workspace ${ws}`);
    const r = await this.handler.handle(
      ws,
      { type: 'AddMember', userId: target.id, role },
      { actor: p.userId, commandId: commandId ?? randomUUID() },
    );
    await this.ctx.waitForProjections(r.seq);
    return { user_id: target.id, email: target.email, role };
  }

  /** `user` is a user id or an email. Their access to the workspace (and open log streams in it) ends. */
  async removeMember(p: Principal, ws: string, user: string, commandId?: string) {
    const target = await this.identities.userByIdOrEmail(user);
    if (!target || !(await this.identities.membership(ws, target.id)))
      throw notFound(`${user} is not a member of workspace ${ws}`);
    const r = await this.handler.handle(
      ws,
      { type: 'RemoveMember', userId: target.id },
      { actor: p.userId, commandId: commandId ?? randomUUID() },
    );
    await this.ctx.waitForProjections(r.seq);
    return { workspace_id: ws, user_id: target.id, email: target.email, removed: true };
  }
}
