import { Body, Controller, Get, HttpCode, Inject, Param, Post, Req } from '@nestjs/common';
import type { Request } from 'express';
import { z } from 'zod';
import { ApiDoc, parseInput } from '#libs/http';
import { Public, type AuthedRequest } from './auth.guard.js';
import { DeviceLoginService } from './device-login.service.js';
import { principalOf } from './workspace-access.js';

const tokenBody = z.object({ device_code: z.string().min(1).max(200) });
const approveBody = z.object({ user_code: z.string().min(1).max(20) }).strict();
const refreshBody = z.object({ refresh_token: z.string().min(1).max(200) });

/** Options of this gateway instance that change auth behaviour. */
export const AUTH_OPTIONS = 'RUNWAY_AUTH_OPTIONS';
export interface AuthOptions {
  /** Single-user local use: every device-flow request is approved as the first admin. Off by default. */
  devAutoApprove: boolean;
  /** Where the CLI is told to approve the code. */
  publicUrl: string;
}

/**
 * The auth base (`/auth/v1/…`): the device-code login of the dlt CLIs (GitHub-shaped routes of
 * dlt-runtime 0.20, WorkOS-style routes and refresh tokens of 0.26.1).
 */
@Controller()
export class AuthController {
  constructor(
    @Inject(DeviceLoginService) private readonly logins: DeviceLoginService,
    @Inject(AUTH_OPTIONS) private readonly opts: AuthOptions,
  ) {}

  @Public()
  @ApiDoc({ summary: 'Start a device-code login (dlt-runtime 0.20: GitHub-shaped route)' })
  @Post('auth/v1/github/device-flow/code')
  @HttpCode(201)
  async code(@Req() req: Request) {
    return this.startLogin(req);
  }

  @Public()
  @ApiDoc({
    summary: 'Poll a device-code login: 201 with a JWT once approved, 428 while pending, 400 if invalid',
    body: tokenBody,
  })
  @Post('auth/v1/github/device-flow/token')
  @HttpCode(201)
  token(@Body() body: unknown) {
    return this.logins.token(parseInput(tokenBody, body, 'body').device_code);
  }

  @Public()
  @ApiDoc({ summary: 'Start a device-code login (dlt-runtime 0.26.1: WorkOS-style route)' })
  @Post('auth/v1/workos/device-flow/code')
  @HttpCode(201)
  async workosCode(@Req() req: Request) {
    return this.startLogin(req);
  }

  @Public()
  @ApiDoc({
    summary:
      'Poll a device-code login (0.26.1): 201 with a JWT and a refresh token once approved, 403 while pending, 400 if invalid',
    body: tokenBody,
  })
  @Post('auth/v1/workos/device-flow/token')
  @HttpCode(201)
  workosToken(@Body() body: unknown) {
    return this.logins.token(parseInput(tokenBody, body, 'body').device_code, {
      pending: 403,
      refresh: true,
    });
  }

  @Public()
  @ApiDoc({
    summary:
      'A new JWT and refresh token for a refresh token (rotated: the old one stops working); 401 if invalid',
    body: refreshBody,
  })
  @Post('auth/v1/auth/refresh')
  @HttpCode(200)
  refresh(@Body() body: unknown) {
    return this.logins.refresh(parseInput(refreshBody, body, 'body').refresh_token);
  }

  @Public()
  @ApiDoc({
    summary: "End a refresh token's login: the refresh token and its JWT are revoked",
    body: refreshBody,
  })
  @Post('auth/v1/auth/logout')
  @HttpCode(204)
  async logout(@Body() body: unknown): Promise<void> {
    await this.logins.logout(parseInput(refreshBody, body, 'body').refresh_token);
  }

  private async startLogin(req: Request) {
    const started = await this.logins.start({
      userAgent: req.get('user-agent') ?? 'unknown',
      ip: req.ip ?? req.socket.remoteAddress ?? 'unknown',
    });
    if (this.opts.devAutoApprove) await this.logins.autoApprove(started.userCode);
    // The dashboard's approval page; the CLIs print verification_uri (`runway admin device approve` works too).
    const page = `${this.opts.publicUrl}/device?code=${started.userCode}`;
    return {
      device_code: started.deviceCode,
      user_code: started.userCode,
      verification_uri: page,
      verification_uri_complete: page,
      interval: 1,
      expires_in: started.expiresIn,
    };
  }

  @ApiDoc({ summary: 'Which client asked for a pending CLI login (user agent, IP, time)' })
  @Get('api/v1/device/:user_code')
  show(@Req() req: AuthedRequest, @Param('user_code') userCode: string) {
    return this.logins.show(principalOf(req), userCode);
  }

  /** A workspace owner approves a pending login; the CLI that asked is then logged in as that user. */
  @ApiDoc({
    summary: 'Approve a pending CLI login: the CLI is logged in as the caller (rate limited)',
    body: approveBody,
  })
  @Post('api/v1/device/approve')
  @HttpCode(201)
  approve(@Req() req: AuthedRequest, @Body() body: unknown) {
    return this.logins.approve(principalOf(req), parseInput(approveBody, body, 'body').user_code);
  }

  @ApiDoc({ summary: 'Deny a pending CLI login: its next poll fails (rate limited)', body: approveBody })
  @Post('api/v1/device/deny')
  @HttpCode(200)
  deny(@Req() req: AuthedRequest, @Body() body: unknown) {
    return this.logins.deny(principalOf(req), parseInput(approveBody, body, 'body').user_code);
  }
}
