import { CanActivate, ExecutionContext, Inject, Injectable, SetMetadata } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import type { Request } from 'express';
import { unauthorized } from '#libs/http';
import { Authenticator, type Principal } from './authenticator.js';

export type { Principal } from './authenticator.js';

export type AuthedRequest = Request & { principal?: Principal };

export const PUBLIC_ROUTE = 'runway:public';
/** Marks a route that needs no credentials (ping, device flow). */
export const Public = () => SetMetadata(PUBLIC_ROUTE, true);

/** Bearer-token authentication for every route not marked @Public(). */
@Injectable()
export class AuthGuard implements CanActivate {
  constructor(
    private readonly reflector: Reflector,
    @Inject(Authenticator) private readonly authenticator: Authenticator,
  ) {}

  async canActivate(context: ExecutionContext): Promise<boolean> {
    if (this.reflector.getAllAndOverride<boolean>(PUBLIC_ROUTE, [context.getHandler(), context.getClass()]))
      return true;
    const req = context.switchToHttp().getRequest<AuthedRequest>();
    const header = req.headers.authorization;
    if (!header) throw unauthorized('missing Authorization header: send "Authorization: Bearer <token>"');
    const m = /^Bearer\s+(\S+)$/i.exec(header);
    if (!m) throw unauthorized('malformed Authorization header: expected "Bearer <token>"');
    req.principal = await this.authenticator.authenticate(m[1]!);
    return true;
  }
}
