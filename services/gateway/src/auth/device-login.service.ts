import { Inject, Injectable } from '@nestjs/common';
import { createHash, randomBytes } from 'node:crypto';
import { ApiError, badRequest, forbidden, unauthorized } from '#libs/http';
import { SERVICE_CONTEXT, type ServiceContext } from '#libs/service-host';
import { UserHandler } from '../user/user.handler.js';
import { parentOf, type Principal } from './authenticator.js';
import { DeviceFlowService, type PendingLogin } from './device-flow.service.js';
import { IdentityRepository } from './identity.repository.js';
import { signJwt } from './jwt.js';
import { RateLimiter } from '../quota/rate-limiter.js';
import { SigningKey } from './signing-key.js';
import { RefreshTokens } from './refresh-tokens.js';

const JWT_TTL_SECONDS = 30 * 24 * 3600;
/** With a refresh token (the WorkOS-style flow of dlt-runtime 0.26.1) the JWT is short-lived. */
const REFRESHABLE_JWT_TTL_SECONDS = 3600;
/** Looking up or approving codes, per approving user: a code is 8 letters of 20, not guessable at this rate. */
const APPROVALS_PER_MINUTE = 10;

const view = (p: PendingLogin) => ({
  user_code: p.userCode,
  status: p.status,
  client: p.client
    ? { user_agent: p.client.userAgent, ip: p.client.ip, requested_at: p.client.requestedAt }
    : null,
});

/**
 * The device-code login: a CLI asks for a code (its user agent, IP and the time are kept with it), a
 * workspace owner looks at who asked and approves it, the CLI's next poll gets a JWT of the approver
 * that expires no later than the token the approver used.
 */
@Injectable()
export class DeviceLoginService {
  private readonly limiter = new RateLimiter(APPROVALS_PER_MINUTE);

  constructor(
    @Inject(DeviceFlowService) private readonly device: DeviceFlowService,
    @Inject(UserHandler) private readonly users: UserHandler,
    @Inject(IdentityRepository) private readonly identities: IdentityRepository,
    @Inject(SigningKey) private readonly signing: SigningKey,
    @Inject(SERVICE_CONTEXT) private readonly ctx: ServiceContext,
    @Inject(RefreshTokens) private readonly refreshTokens: RefreshTokens,
  ) {}

  start(client: { userAgent: string; ip: string }) {
    return this.device.start(client);
  }

  /** Single-user local mode: the first admin approves every code at once. */
  async autoApprove(userCode: string): Promise<void> {
    const admin = await this.identities.firstAdmin();
    if (admin) await this.device.approve(userCode, admin.id);
  }

  async show(p: Principal, userCode: string) {
    await this.requireApprover(p);
    const found = await this.device.describe(userCode);
    if (!found) throw this.unknown(userCode);
    return view(found);
  }

  async approve(p: Principal, userCode: string) {
    await this.requireApprover(p);
    const approved = await this.device.approve(userCode, p.userId, parentOf(p));
    if (!approved) throw this.unknown(userCode);
    return { approved: true, ...view(approved), email: p.email };
  }

  async deny(p: Principal, userCode: string) {
    await this.requireApprover(p);
    const denied = await this.device.deny(userCode, p.userId);
    if (!denied) throw this.unknown(userCode);
    return { denied: true, ...view(denied) };
  }

  /**
   * One poll of the CLI: 400 ends its loop, 201 carries the JWT, and while pending 428 (the GitHub
   * flow of 0.20.0) or 403 (`pending: 403`, the WorkOS-style flow of 0.26.1, which also gets a
   * refresh token).
   */
  async token(
    deviceCode: string,
    opts: { pending: 403 | 428; refresh: boolean } = { pending: 428, refresh: false },
  ) {
    const poll = await this.device.poll(deviceCode);
    if (poll.state === 'invalid') throw badRequest(poll.reason);
    if (poll.state === 'pending')
      throw new ApiError(opts.pending, 'authorization pending: approve the code first', {});
    const user = await this.identities.userById(poll.userId);
    if (!user) throw badRequest('the approving user no longer exists');
    if (user.disabled_at) throw badRequest('the approving user is disabled');
    const capAt = poll.approvedWith?.expiresAt ?? null;
    const { jwt, jti } = await this.mint(
      user,
      opts.refresh ? REFRESHABLE_JWT_TTL_SECONDS : JWT_TTL_SECONDS,
      capAt,
      poll.approvedWith,
    );
    if (!opts.refresh) return { email: user.email, id: user.id, jwt };
    const refreshToken = await this.refreshTokens.issue(user.id, jti, capAt);
    return { email: user.email, id: user.id, jwt, refresh_token: refreshToken };
  }

  /**
   * `POST /v1/auth/refresh`: a new JWT and a new refresh token for a valid one (rotation). 401 when
   * the token is unknown, expired, revoked, replayed (which revokes its family), or when the JWT of
   * the family was revoked or its user disabled.
   */
  async refresh(refreshToken: string) {
    const checked = await this.refreshTokens.check(refreshToken);
    if (!checked.ok) throw unauthorized(checked.reason);
    const current = await this.identities.tokenById(checked.family.jti);
    if (!current || current.revoked_at) throw unauthorized('the login was revoked: log in again');
    const user = await this.identities.userById(checked.family.userId);
    if (!user || user.disabled_at) throw unauthorized('the user is disabled');
    const { jwt, jti } = await this.mint(user, REFRESHABLE_JWT_TTL_SECONDS, checked.family.capAt, undefined);
    const next = await this.refreshTokens.rotate(checked, jti);
    if (!next) {
      await this.users.revokeToken(user.id, jti, user.id);
      throw unauthorized('the refresh token was used concurrently: log in again');
    }
    return { jwt, refresh_token: next };
  }

  /** `POST /v1/auth/logout`: ends the refresh token's family and revokes its current JWT. */
  async logout(refreshToken: string): Promise<void> {
    const checked = await this.refreshTokens.check(refreshToken);
    if (!checked.ok) throw badRequest(checked.reason);
    await this.refreshTokens.revoke(refreshToken);
    const current = await this.identities.tokenById(checked.family.jti);
    if (current && !current.revoked_at) {
      const r = await this.users.revokeToken(
        checked.family.userId,
        checked.family.jti,
        checked.family.userId,
      );
      await this.ctx.waitForProjections(r.seq);
    }
  }

  /** Signs a CLI JWT and records it as a token (so it can be revoked). */
  private async mint(
    user: { id: string; email: string },
    ttlSeconds: number,
    capAt: string | null,
    approvedWith: { tokenId: string; expiresAt: string | null } | undefined,
  ): Promise<{ jwt: string; jti: string }> {
    const now = Math.floor(Date.now() / 1000);
    const parentExp = capAt ? Math.floor(Date.parse(capAt) / 1000) : null;
    const exp = parentExp === null ? now + ttlSeconds : Math.min(now + ttlSeconds, parentExp);
    if (exp <= now) throw badRequest('the token that approved this login has expired: run login again');
    const jti = randomBytes(8).toString('hex');
    const jwt = signJwt(this.signing.key, {
      sub: user.id,
      email: user.email,
      aud: 'cli',
      iat: now,
      exp,
      jti,
      iss: 'runway',
    });
    const recorded = await this.users.recordJwt(
      user.id,
      jti,
      createHash('sha256').update(jwt).digest('hex'),
      new Date(exp * 1000),
      user.id,
      approvedWith,
    );
    await this.ctx.waitForProjections(recorded.seq);
    return { jwt, jti };
  }

  /**
   * Looking at, approving or denying needs the owner role (of at least one workspace) or an
   * instance admin (docs/accounts.md "Device logins"), and is rate limited.
   */
  private async requireApprover(p: Principal): Promise<void> {
    const wait = this.limiter.take(p.userId);
    if (wait > 0)
      throw new ApiError(429, `too many login approvals: try again in ${wait} s`, { retry_after: wait });
    const user = await this.identities.userById(p.userId);
    if (!user?.is_admin && !(await this.identities.ownsAWorkspace(p.userId)))
      throw forbidden('permission denied: only a workspace owner can approve a CLI login');
  }

  private unknown(userCode: string): ApiError {
    return new ApiError(404, `no pending login with code ${userCode} (codes expire after 15 minutes)`);
  }
}
