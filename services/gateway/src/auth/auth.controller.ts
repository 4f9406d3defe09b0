import { Body, Controller, HttpCode, Inject, Post, Req } from '@nestjs/common';
import { createHash, randomBytes } from 'node:crypto';
import { z } from 'zod';
import { ApiDoc, ApiError, badRequest, parseInput } from '#libs/http';
import { SERVICE_CONTEXT, type ServiceContext } from '#libs/service-host';
import { UserHandler } from '../user/user.handler.js';
import { Public, type AuthedRequest } from './auth.guard.js';
import { DeviceFlowService } from './device-flow.service.js';
import { IdentityRepository } from './identity.repository.js';
import { signJwt } from './jwt.js';
import { SigningKey } from './signing-key.js';
import { principalOf } from './workspace-access.js';

const JWT_TTL_SECONDS = 30 * 24 * 3600;
const tokenBody = z.object({ device_code: z.string().min(1).max(200) });
const approveBody = z.object({ user_code: z.string().min(1).max(20) }).strict();

/** Options of this gateway instance that change auth behaviour. */
export const AUTH_OPTIONS = 'RUNWAY_AUTH_OPTIONS';
export interface AuthOptions {
  /** Single-user local use: every device-flow request is approved as the first admin. Off by default. */
  devAutoApprove: boolean;
  /** Where the CLI is told to approve the code. */
  publicUrl: string;
}

/** The auth base (`/auth/v1/…`): the device-code login of the dlt CLI (GitHub-shaped routes). */
@Controller()
export class AuthController {
  constructor(
    @Inject(DeviceFlowService) private readonly device: DeviceFlowService,
    @Inject(UserHandler) private readonly users: UserHandler,
    @Inject(IdentityRepository) private readonly identities: IdentityRepository,
    @Inject(SigningKey) private readonly signing: SigningKey,
    @Inject(SERVICE_CONTEXT) private readonly ctx: ServiceContext,
    @Inject(AUTH_OPTIONS) private readonly opts: AuthOptions,
  ) {}

  @Public()
  @ApiDoc({ summary: 'Start a device-code login (dlt CLI compatible)' })
  @Post('auth/v1/github/device-flow/code')
  @HttpCode(201)
  async code() {
    const started = await this.device.start();
    if (this.opts.devAutoApprove) {
      const admin = await this.identities.firstAdmin();
      if (admin) await this.device.approve(started.userCode, admin.id);
    }
    return {
      device_code: started.deviceCode,
      user_code: started.userCode,
      verification_uri: `${this.opts.publicUrl}/device (approve with: runway admin device approve ${started.userCode})`,
      interval: 1,
      expires_in: started.expiresIn,
    };
  }

  @Public()
  @ApiDoc({
    summary: 'Poll a device-code login: 201 with a JWT once approved, 428 while pending, 400 if invalid',
    body: tokenBody,
  })
  @Post('auth/v1/github/device-flow/token')
  @HttpCode(201)
  async token(@Body() body: unknown) {
    const input = parseInput(tokenBody, body, 'body');
    const poll = await this.device.poll(input.device_code);
    // 400 aborts the dlt CLI's login loop; any other status means "keep polling".
    if (poll.state === 'invalid') throw badRequest(poll.reason);
    if (poll.state === 'pending')
      throw new ApiError(428, 'authorization pending: approve the code first', {});
    const user = await this.identities.userById(poll.userId);
    if (!user) throw badRequest('the approving user no longer exists');
    const now = Math.floor(Date.now() / 1000);
    const jti = randomBytes(8).toString('hex');
    const jwt = signJwt(this.signing.key, {
      sub: user.id,
      email: user.email,
      aud: 'cli',
      iat: now,
      exp: now + JWT_TTL_SECONDS,
      jti,
      iss: 'runway',
    });
    const recorded = await this.users.recordJwt(
      user.id,
      jti,
      createHash('sha256').update(jwt).digest('hex'),
      new Date((now + JWT_TTL_SECONDS) * 1000),
      user.id,
    );
    await this.ctx.waitForProjections(recorded.seq);
    return { email: user.email, id: user.id, jwt };
  }

  /** A signed-in user approves a pending login; the CLI that asked is then logged in as that user. */
  @ApiDoc({ summary: 'Approve a pending CLI login as the caller', body: approveBody })
  @Post('api/v1/device/approve')
  @HttpCode(201)
  async approve(@Req() req: AuthedRequest, @Body() body: unknown) {
    const input = parseInput(approveBody, body, 'body');
    const p = principalOf(req);
    const ok = await this.device.approve(input.user_code, p.userId);
    if (!ok)
      throw new ApiError(
        404,
        `no pending login with code ${input.user_code} (codes expire after 15 minutes)`,
      );
    return { approved: true, user_code: input.user_code.toUpperCase(), email: p.email };
  }
}
