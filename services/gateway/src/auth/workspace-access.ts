import { Inject, Injectable } from '@nestjs/common';
import { z } from 'zod';
import { forbidden, notFound } from '#libs/http';
import type { AuthRule } from './authenticated.decorator.js';
import { Authenticator, type Principal } from './authenticator.js';
import { IdentityRepository } from './identity.repository.js';

export type Need = 'read' | 'write' | 'owner';
const uuid = z.string().uuid();

export function principalOf(req: { principal?: Principal }): Principal {
  if (!req.principal) throw new Error('route reached without authentication');
  return req.principal;
}

/**
 * Authorization, the one implementation behind @Authenticated (REST) and the gRPC method table:
 * a workspace the caller is not a member of is a 404 (its existence is not revealed); a viewer
 * asking to write gets 403; instance-admin routes refuse others with 403.
 */
@Injectable()
export class WorkspaceAccess {
  constructor(
    @Inject(IdentityRepository) private readonly identities: IdentityRepository,
    @Inject(Authenticator) private readonly authenticator: Authenticator,
  ) {}

  /** Enforces `rule` for the caller; `workspaceId` / `user` are what the request names. */
  async authorize(
    principal: Principal,
    rule: AuthRule,
    target: { workspaceId?: string; user?: string },
  ): Promise<void> {
    if (rule.admin && !(await this.identities.userById(principal.userId))?.is_admin)
      throw forbidden('permission denied: only an instance administrator can do this');
    if (!rule.workspace) return;
    let need: Need = rule.workspace;
    if (rule.selfNeeds && target.user) {
      const named = await this.identities.userByIdOrEmail(target.user);
      if (named && named.id === principal.userId) need = rule.selfNeeds;
    }
    await this.require(principal, target.workspaceId ?? '', need);
  }

  /**
   * For long-lived responses: whether the caller may still read the workspace (credential not
   * revoked or expired, user not disabled, still a member). Null while allowed, else the HTTP
   * status and detail the request would get now.
   */
  async recheck(
    principal: Principal,
    workspaceId: string,
  ): Promise<{ status: 401 | 404; detail: string } | null> {
    const why = await this.authenticator.recheck(principal);
    if (why) return { status: 401, detail: why };
    if (!(await this.identities.membership(workspaceId, principal.userId)))
      return { status: 404, detail: `workspace ${workspaceId} not found` };
    return null;
  }

  private async require(principal: Principal, workspaceId: string, need: Need): Promise<void> {
    if (!uuid.safeParse(workspaceId).success) throw notFound(`workspace ${workspaceId} not found`);
    const m = await this.identities.membership(workspaceId, principal.userId);
    if (!m) throw notFound(`workspace ${workspaceId} not found`);
    if (need === 'write' && m.role === 'viewer')
      throw forbidden('permission denied: viewers can read but not change this workspace');
    if (need === 'owner' && m.role !== 'owner')
      throw forbidden('permission denied: only an owner of this workspace can do this');
  }
}
