import { Body, Controller, Delete, Get, HttpCode, Inject, Param, Post, Req, Res } from '@nestjs/common';
import type { Request, Response } from 'express';
import { z } from 'zod';
import { ApiDoc, ApiError, forbidden, parseInput } from '#libs/http';
import { Public, type AuthedRequest } from '../auth/auth.guard.js';
import { SERVICE_CONTEXT, type ServiceContext } from '#libs/service-host';
import { Authenticated } from '../auth/authenticated.decorator.js';
import { principalOf } from '../auth/workspace-access.js';
import { MAX_PASSWORD_LENGTH } from './passwords.js';
import {
  CSRF_HEADER,
  SESSION_COOKIE,
  clearSessionCookies,
  cookieOf,
  setSessionCookies,
  wantsSecure,
} from './session-cookies.js';
import { SessionsService, type ClientInfo } from './sessions.service.js';

export const signInBody = z
  .object({ email: z.string().min(1).max(320), password: z.string().min(1).max(MAX_PASSWORD_LENGTH) })
  .strict();
export const changePasswordBody = z
  .object({ current: z.string().min(1).max(MAX_PASSWORD_LENGTH), new: z.string().min(1).max(1000) })
  .strict();
export const setPasswordBody = z.object({ password: z.string().min(1).max(1000) }).strict();

export const clientOf = (req: Request): ClientInfo => ({
  userAgent: req.get('user-agent') ?? 'unknown',
  ip: req.ip ?? req.socket.remoteAddress ?? 'unknown',
});

/** The origin of the request itself and of the public URL: a sign-in form posted from elsewhere is refused. */
function sameOrigin(req: Request, publicUrl: string): boolean {
  const origin = req.get('origin');
  if (!origin) return true;
  return origin === `${req.protocol}://${req.get('host') ?? ''}` || origin === new URL(publicUrl).origin;
}

/**
 * Dashboard sign-in (`/auth/…`, browser only: cookies are REST-only) and the caller's sessions
 * and password (`/api/v1/me/…`, also over gRPC through the same service). docs/dashboard-auth.md.
 */
@Controller()
export class SessionController {
  private readonly opts: ServiceContext['config'];
  constructor(
    @Inject(SessionsService) private readonly sessions: SessionsService,
    @Inject(SERVICE_CONTEXT) ctx: ServiceContext,
  ) {
    this.opts = ctx.config;
  }

  @Public()
  @ApiDoc({
    summary: 'How one can sign in to the dashboard: password, and the OpenID provider if configured',
  })
  @Get('auth/providers')
  providers() {
    return { password: true, oidc: this.opts.oidc ? { name: this.opts.oidc.name } : null };
  }

  @Public()
  @ApiDoc({
    summary: 'Sign in with email and password: sets the session (HttpOnly) and CSRF cookies',
    body: signInBody,
  })
  @Post('auth/session')
  @HttpCode(200)
  async signIn(@Req() req: Request, @Res({ passthrough: true }) res: Response, @Body() body: unknown) {
    if (!sameOrigin(req, this.opts.publicUrl)) throw forbidden('sign-in from another origin is refused');
    const input = parseInput(signInBody, body, 'body');
    const started = await this.sessions
      .passwordSignIn(input.email, input.password, clientOf(req))
      .catch((err: unknown) => {
        if (err instanceof ApiError && err.status === 429)
          res.setHeader('Retry-After', String(err.extra.retry_after));
        throw err;
      });
    await this.sessions.endByCookie(cookieOf(req, SESSION_COOKIE));
    setSessionCookies(res, wantsSecure(req, this.opts.publicUrl), started.cookie, started.csrf);
    return this.sessions.signedInView(started);
  }

  @ApiDoc({ summary: 'Who is signed in: the user, their workspaces with roles, the session and its expiry' })
  @Get('auth/session')
  current(@Req() req: AuthedRequest) {
    return this.sessions.current(principalOf(req));
  }

  /** Public so that signing out without a (valid) session still clears the cookies. */
  @Public()
  @ApiDoc({ summary: 'Sign out: the session is revoked and the cookies cleared (X-CSRF-Token needed)' })
  @Delete('auth/session')
  async signOut(@Req() req: Request, @Res({ passthrough: true }) res: Response) {
    const cookie = cookieOf(req, SESSION_COOKIE);
    const p = cookie ? await this.sessions.authenticate(cookie).catch(() => undefined) : undefined;
    if (p && !this.sessions.csrfMatches(p, req.get(CSRF_HEADER)))
      throw forbidden('missing or wrong X-CSRF-Token header: send the value of the runway_csrf cookie');
    await this.sessions.signOut(p);
    clearSessionCookies(res, wantsSecure(req, this.opts.publicUrl));
    return { signed_out: true };
  }

  @ApiDoc({ summary: "The caller's open dashboard sessions (created, last seen, user agent, IP, current)" })
  @Get('api/v1/me/sessions')
  list(@Req() req: AuthedRequest) {
    return this.sessions.list(principalOf(req));
  }

  @ApiDoc({ summary: 'Revoke one of the caller’s sessions' })
  @Delete('api/v1/me/sessions/:id')
  revoke(@Req() req: AuthedRequest, @Param('id') id: string) {
    return this.sessions.revoke(principalOf(req), id);
  }

  @ApiDoc({
    summary: 'Change the caller’s password (≥ 10 characters, not the email); their other sessions end',
    body: changePasswordBody,
  })
  @Post('api/v1/me/password')
  @HttpCode(200)
  changePassword(@Req() req: AuthedRequest, @Body() body: unknown) {
    const input = parseInput(changePasswordBody, body, 'body');
    return this.sessions.changePassword(principalOf(req), input.current, input.new, clientOf(req));
  }

  @ApiDoc({
    summary: 'Set a user’s password (instance admins); the user’s sessions end',
    body: setPasswordBody,
  })
  @Authenticated({ admin: true })
  @Post('api/v1/admin/users/:user/password')
  @HttpCode(200)
  setPassword(@Req() req: AuthedRequest, @Param('user') user: string, @Body() body: unknown) {
    return this.sessions.setPassword(
      principalOf(req),
      user,
      parseInput(setPasswordBody, body, 'body').password,
    );
  }
}
