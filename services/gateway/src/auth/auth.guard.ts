import { CanActivate, ExecutionContext, Inject, Injectable, SetMetadata } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import type { Request } from 'express';
import { forbidden, unauthorized } from '#libs/http';
import { CSRF_HEADER, SESSION_COOKIE, cookieOf } from '../session/session-cookies.js';
import { SessionsService } from '../session/sessions.service.js';
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

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

/**
 * Authentication for every route not marked @Public(): a bearer token, or else the dashboard's
 * session cookie (whose unsafe requests must echo the session's CSRF value in X-CSRF-Token);
 * then the route's @Authenticated rule (workspace role, instance admin) before the handler runs.
 */
@Injectable()
export class AuthGuard implements CanActivate {
  constructor(
    private readonly reflector: Reflector,
    @Inject(Authenticator) private readonly authenticator: Authenticator,
    @Inject(WorkspaceAccess) private readonly access: WorkspaceAccess,
    @Inject(SessionsService) private readonly sessions: SessionsService,
  ) {}

  async canActivate(context: ExecutionContext): Promise<boolean> {
    const targets = [context.getHandler(), context.getClass()];
    if (this.reflector.getAllAndOverride<boolean>(PUBLIC_ROUTE, targets)) return true;
    const req = context.switchToHttp().getRequest<AuthedRequest>();
    const principal = await this.authenticate(req);
    req.principal = principal;
    const rule = this.reflector.getAllAndOverride<AuthRule | undefined>(AUTH_RULE, targets);
    if (rule)
      await this.access.authorize(principal, rule, {
        workspaceId: param(req, 'ws'),
        user: param(req, 'user'),
      });
    return true;
  }

  private async authenticate(req: AuthedRequest): Promise<Principal> {
    const header = req.headers.authorization;
    const cookie = header ? undefined : cookieOf(req, SESSION_COOKIE);
    if (cookie) {
      const p = await this.sessions.authenticate(cookie);
      if (!SAFE_METHODS.has(req.method) && !this.sessions.csrfMatches(p, req.get(CSRF_HEADER)))
        throw forbidden('missing or wrong X-CSRF-Token header: send the value of the runway_csrf cookie');
      return p;
    }
    if (!header) throw unauthorized('missing Authorization header: send "Authorization: Bearer <token>"');
    const m = /^Bearer\s+(\S+)$/i.exec(header);
    if (!m) throw unauthorized('malformed Authorization header: expected "Bearer <token>"');
    return this.authenticator.authenticate(m[1]!);
  }
}
