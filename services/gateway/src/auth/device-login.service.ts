import { Inject, Injectable } from '@nestjs/common';
import { createHash, randomBytes } from 'node:crypto';
import { ApiError, badRequest, forbidden } from '#libs/http';
import { SERVICE_CONTEXT, type ServiceContext } from '#libs/service-host';
import { UserHandler } from '../user/user.handler.js';
import { parentOf, type Principal } from './authenticator.js';
import { DeviceFlowService, type PendingLogin } from './device-flow.service.js';
import { IdentityRepository } from './identity.repository.js';
import { signJwt } from './jwt.js';
import { RateLimiter } from '../quota/rate-limiter.js';
import { SigningKey } from './signing-key.js';

const JWT_TTL_SECONDS = 30 * 24 * 3600;
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

  /** One poll of the CLI: 400 ends its loop, 428 keeps it polling, 201 carries the JWT. */
  async token(deviceCode: string) {
    const poll = await this.device.poll(deviceCode);
    if (poll.state === 'invalid') throw badRequest(poll.reason);
    if (poll.state === 'pending')
      throw new ApiError(428, 'authorization pending: approve the code first', {});
    const user = await this.identities.userById(poll.userId);
    if (!user) throw badRequest('the approving user no longer exists');
    if (user.disabled_at) throw badRequest('the approving user is disabled');
    const now = Math.floor(Date.now() / 1000);
    const parentExp = poll.approvedWith?.expiresAt
      ? Math.floor(Date.parse(poll.approvedWith.expiresAt) / 1000)
      : null;
    const exp = parentExp === null ? now + JWT_TTL_SECONDS : Math.min(now + JWT_TTL_SECONDS, parentExp);
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
      poll.approvedWith,
    );
    await this.ctx.waitForProjections(recorded.seq);
    return { email: user.email, id: user.id, jwt };
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
