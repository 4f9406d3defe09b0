import { CanActivate, ExecutionContext, Inject, Injectable, SetMetadata } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import type { Request } from 'express';
import { unauthorized } from '#libs/http';
import { AUTH_RULE, type AuthRule } from './authenticated.decorator.js';
import { Authenticator, type Principal } from './authenticator.js';
import { WorkspaceAccess } from './workspace-access.js';

export type { Principal } from './authenticator.js';

export type AuthedRequest = Request & { principal?: Principal };

export const PUBLIC_ROUTE = 'runway:public';
/** Marks a route that needs no credentials (ping, device flow). */
export const Public = () => SetMetadata(PUBLIC_ROUTE, true);

const param = (req: Request, name: string): string => {
  const v: unknown = req.params[name];
  return typeof v === 'string' ? v : '';
};

/**
 * Bearer-token authentication for every route not marked @Public(), then the route's
 * @Authenticated rule (workspace role, instance admin) before the handler runs.
 */
@Injectable()
export class AuthGuard implements CanActivate {
  constructor(
    private readonly reflector: Reflector,
    @Inject(Authenticator) private readonly authenticator: Authenticator,
    @Inject(WorkspaceAccess) private readonly access: WorkspaceAccess,
  ) {}

  async canActivate(context: ExecutionContext): Promise<boolean> {
    const targets = [context.getHandler(), context.getClass()];
    if (this.reflector.getAllAndOverride<boolean>(PUBLIC_ROUTE, targets)) return true;
    const req = context.switchToHttp().getRequest<AuthedRequest>();
    const header = req.headers.authorization;
    if (!header) throw unauthorized('missing Authorization header: send "Authorization: Bearer <token>"');
    const m = /^Bearer\s+(\S+)$/i.exec(header);
    if (!m) throw unauthorized('malformed Authorization header: expected "Bearer <token>"');
    const principal = await this.authenticator.authenticate(m[1]!);
    req.principal = principal;
    const rule = this.reflector.getAllAndOverride<AuthRule | undefined>(AUTH_RULE, targets);
    if (rule)
      await this.access.authorize(principal, rule, {
        workspaceId: param(req, 'ws'),
        user: param(req, 'user'),
      });
    return true;
  }
}
