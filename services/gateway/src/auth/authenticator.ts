import { Inject, Injectable } from '@nestjs/common';
import { unauthorized } from '#libs/http';
import { IdentityRepository } from './identity.repository.js';
import { verifyJwt } from './jwt.js';
import { SigningKey } from './signing-key.js';
import { SessionsService } from '../session/sessions.service.js';
import { hashesEqual, hashSecret, parseApiToken } from './tokens.js';

export interface Principal {
  userId: string;
  email: string;
  /** The bearer token in use; null when signed in with a dashboard session. */
  tokenId: string | null;
  /** Expiry of the credential in use (null: none); a token it mints expires no later. */
  tokenExpiresAt: Date | null;
  /** The dashboard session in use (its public id); null with a bearer token. */
  sessionId: string | null;
}

/**
 * The caller's token as the parent of a token it mints (which then expires no later). A person
 * signed in to the dashboard mints tokens without a parent: they outlive the browser session.
 */
export const parentOf = (p: Principal): { tokenId: string; expiresAt: string | null } | undefined =>
  p.tokenId === null ? undefined : { tokenId: p.tokenId, expiresAt: p.tokenExpiresAt?.toISOString() ?? null };

type TokenRow = { revoked_at: Date | null; expires_at: Date | null };
type UserRow = { disabled_at: Date | null };

/** Why a token (with its user) does not authenticate now, or null when it does. */
export function refusal(
  token: TokenRow | undefined,
  user: UserRow | undefined,
  now = Date.now(),
): string | null {
  if (!token || !user) return 'invalid token';
  if (token.revoked_at) return 'token has been revoked';
  if (token.expires_at && token.expires_at.getTime() <= now) return 'token has expired';
  if (user.disabled_at) return 'the user is disabled';
  return null;
}

/**
 * Bearer credentials: API tokens (`rwy_<id>_<secret>`) and CLI login JWTs, each recorded as a token
 * in the read model, so revocation, expiry and a disabled user apply to both. Long-lived responses
 * (log streams) call `recheck` periodically and end when the credential stops working.
 */
@Injectable()
export class Authenticator {
  constructor(
    @Inject(IdentityRepository) private readonly identities: IdentityRepository,
    @Inject(SigningKey) private readonly signing: SigningKey,
    @Inject(SessionsService) private readonly sessions: SessionsService,
  ) {}

  async authenticate(raw: string): Promise<Principal> {
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
    const user = row ? await this.identities.userById(row.user_id) : undefined;
    const why = refusal(row, user);
    if (why || !row || !user) throw unauthorized(why ?? 'invalid token');
    return {
      userId: user.id,
      email: user.email,
      tokenId: row.id,
      tokenExpiresAt: row.expires_at,
      sessionId: null,
    };
  }

  /** Why the principal's credential stopped working since it was checked, or null while it works. */
  async recheck(p: Principal): Promise<string | null> {
    if (p.tokenId === null) return p.sessionId ? this.sessions.recheck(p.sessionId) : 'not signed in';
    const row = await this.identities.tokenById(p.tokenId);
    const user = await this.identities.userById(p.userId);
    return refusal(row, user);
  }
}
