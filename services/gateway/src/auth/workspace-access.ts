import { Inject, Injectable } from '@nestjs/common';
import { z } from 'zod';
import { forbidden, notFound } from '#libs/http';
import type { AuthedRequest } from './auth.guard.js';
import { Authenticator, type Principal } from './authenticator.js';
import { IdentityRepository } from './identity.repository.js';

export type Need = 'read' | 'write' | 'owner';
const uuid = z.string().uuid();

export function principalOf(req: AuthedRequest): Principal {
  if (!req.principal) throw new Error('route reached without authentication');
  return req.principal;
}

/**
 * Authorization for workspace-scoped routes: a workspace the caller is not a member of is a 404
 * (its existence is not revealed); a viewer asking to write gets 403.
 */
@Injectable()
export class WorkspaceAccess {
  constructor(
    @Inject(IdentityRepository) private readonly identities: IdentityRepository,
    @Inject(Authenticator) private readonly authenticator: Authenticator,
  ) {}

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

  async require(
    req: AuthedRequest,
    workspaceId: string,
    need: Need,
  ): Promise<{ principal: Principal; role: string }> {
    const principal = principalOf(req);
    if (!uuid.safeParse(workspaceId).success) throw notFound(`workspace ${workspaceId} not found`);
    const m = await this.identities.membership(workspaceId, principal.userId);
    if (!m) throw notFound(`workspace ${workspaceId} not found`);
    if (need === 'write' && m.role === 'viewer')
      throw forbidden('permission denied: viewers can read but not change this workspace');
    if (need === 'owner' && m.role !== 'owner')
      throw forbidden('permission denied: only an owner of this workspace can do this');
    return { principal, role: m.role };
  }
}
