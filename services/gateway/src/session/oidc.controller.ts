import { Controller, Get, Inject, Logger, Query, Req, Res } from '@nestjs/common';
import type { Request, Response } from 'express';
import { ApiDoc } from '#libs/http';
import { SERVICE_CONTEXT, type ServiceContext } from '#libs/service-host';
import { Public } from '../auth/auth.guard.js';
import { OidcError, OidcService } from './oidc.service.js';
import { SessionsService } from './sessions.service.js';
import { clientOf } from './session.controller.js';
import {
  SESSION_COOKIE,
  clearOidcCookie,
  cookieOf,
  setOidcCookie,
  setSessionCookies,
  wantsSecure,
} from './session-cookies.js';

const FLOW_COOKIE = 'runway_oidc';

const escapeHtml = (s: string) =>
  s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);

/** A failed sign-in as a small page a person can read (the browser got here by a redirect). */
function errorPage(res: Response, status: number, message: string): void {
  res
    .status(status)
    .type('html')
    .set('cache-control', 'no-store')
    .send(
      `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Sign-in failed · Runway</title>` +
        `<meta name="viewport" content="width=device-width, initial-scale=1"></head>` +
        `<body style="font-family:system-ui,sans-serif;max-width:36rem;margin:4rem auto;padding:0 1rem">` +
        `<h1>Sign-in failed</h1><p role="alert">${escapeHtml(message)}</p>` +
        `<p><a href="/">Back to Runway</a></p></body></html>`,
    );
}

/** OpenID Connect sign-in for the dashboard (browser redirects; REST only). docs/dashboard-auth.md. */
@Controller('auth/oidc')
export class OidcController {
  private readonly log = new Logger('OidcController');
  private readonly publicUrl: string;
  constructor(
    @Inject(OidcService) private readonly oidc: OidcService,
    @Inject(SessionsService) private readonly sessions: SessionsService,
    @Inject(SERVICE_CONTEXT) ctx: ServiceContext,
  ) {
    this.publicUrl = ctx.config.publicUrl;
  }

  @Public()
  @ApiDoc({ summary: 'Start an OpenID Connect sign-in: 302 to the provider (?return_to=/path)' })
  @Get('start')
  async start(@Req() req: Request, @Res() res: Response, @Query('return_to') returnTo: unknown) {
    try {
      const { url, cookie } = await this.oidc.start(returnTo);
      setOidcCookie(res, wantsSecure(req, this.publicUrl), FLOW_COOKIE, cookie);
      res.set('cache-control', 'no-store').redirect(302, url);
    } catch (err) {
      this.fail(res, err);
    }
  }

  @Public()
  @ApiDoc({ summary: 'Where the OpenID provider returns: verifies, starts a session, 302 to return_to' })
  @Get('callback')
  async callback(@Req() req: Request, @Res() res: Response) {
    const secure = wantsSecure(req, this.publicUrl);
    const q = req.originalUrl.indexOf('?');
    const query = q >= 0 ? req.originalUrl.slice(q) : '';
    clearOidcCookie(res, secure, FLOW_COOKIE);
    try {
      const { started, returnTo } = await this.oidc.finish(query, cookieOf(req, FLOW_COOKIE), clientOf(req));
      await this.sessions.endByCookie(cookieOf(req, SESSION_COOKIE));
      setSessionCookies(res, secure, started.cookie, started.csrf);
      res.set('cache-control', 'no-store').redirect(302, returnTo);
    } catch (err) {
      this.fail(res, err);
    }
  }

  private fail(res: Response, err: unknown): void {
    if (err instanceof OidcError) errorPage(res, err.status, err.message);
    else {
      // The message only (no request, so no code, state or cookie reaches the log).
      this.log.error(`OpenID Connect sign-in failed: ${err instanceof Error ? err.message : String(err)}`);
      errorPage(res, 500, 'the sign-in failed unexpectedly: try again');
    }
  }
}
