import { CanActivate, ExecutionContext, Injectable, SetMetadata } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import type { Request } from 'express';
import { unauthorized } from '#libs/http';
import { IdentityRepository } from './identity.repository.js';
import { verifyJwt } from './jwt.js';
import { SigningKey } from './signing-key.js';
import { hashesEqual, hashSecret, parseApiToken } from './tokens.js';

export interface Principal {
  userId: string;
  email: string;
  tokenId: string;
}

export type AuthedRequest = Request & { principal?: Principal };

export const PUBLIC_ROUTE = 'runway:public';
/** Marks a route that needs no credentials (ping, device flow). */
export const Public = () => SetMetadata(PUBLIC_ROUTE, true);

/** Bearer-token authentication for every route not marked @Public(). */
@Injectable()
export class AuthGuard implements CanActivate {
  constructor(
    private readonly reflector: Reflector,
    private readonly identities: IdentityRepository,
    private readonly signing: SigningKey,
  ) {}

  async canActivate(context: ExecutionContext): Promise<boolean> {
    if (this.reflector.getAllAndOverride<boolean>(PUBLIC_ROUTE, [context.getHandler(), context.getClass()]))
      return true;
    const req = context.switchToHttp().getRequest<AuthedRequest>();
    const header = req.headers.authorization;
    if (!header) throw unauthorized('missing Authorization header: send "Authorization: Bearer <token>"');
    const m = /^Bearer\s+(\S+)$/i.exec(header);
    if (!m) throw unauthorized('malformed Authorization header: expected "Bearer <token>"');
    const raw = m[1]!;
    let tokenId: string;
    const parsed = parseApiToken(raw);
    if (parsed) {
      tokenId = parsed.id;
      const row = await this.identities.tokenById(tokenId);
      if (!row || !hashesEqual(row.hash, hashSecret(parsed.secret))) throw unauthorized('invalid token');
    } else {
      // A CLI login JWT: signed by this instance, and recorded as a token (its jti) so it can be revoked.
      const check = verifyJwt(this.signing.key, raw);
      if (!check.ok)
        throw unauthorized(check.reason === 'expired' ? 'token has expired: log in again' : 'invalid token');
      tokenId = check.claims.jti;
    }
    const row = await this.identities.tokenById(tokenId);
    if (!row) throw unauthorized('invalid token');
    if (row.revoked_at) throw unauthorized('token has been revoked');
    if (row.expires_at && row.expires_at.getTime() <= Date.now()) throw unauthorized('token has expired');
    const user = await this.identities.userById(row.user_id);
    if (!user) throw unauthorized('invalid token');
    req.principal = { userId: user.id, email: user.email, tokenId: row.id };
    return true;
  }
}
