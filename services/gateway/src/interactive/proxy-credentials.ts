import { Inject, Injectable } from '@nestjs/common';
import type { IncomingMessage } from 'node:http';
import { ApiError } from '#libs/http';
import { SERVICE_CONTEXT, type ServiceContext } from '#libs/service-host';
import { Authenticator } from '../auth/authenticator.js';
import { SESSION_COOKIE } from '../session/session-cookies.js';
import { SessionsService } from '../session/sessions.service.js';
import type { Credentials } from './app-proxy.js';

/** One cookie of a request (plain node request: the proxy runs before Express parses anything). */
function cookie(req: IncomingMessage, name: string): string | undefined {
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const eq = part.indexOf('=');
    if (eq < 0 || part.slice(0, eq).trim() !== name) continue;
    try {
      return decodeURIComponent(part.slice(eq + 1).trim());
    } catch {
      return undefined;
    }
  }
  return undefined;
}

/**
 * The proxy's authentication (it runs before Nest's guard, on plain requests and upgrades): a
 * bearer token (scripts), else the dashboard's session cookie. A cookie-authenticated request
 * that names another origin (`Origin`: a page of another site opening a WebSocket or posting) is
 * refused: the app's own pages are on the gateway's origin. A credential that does not work is
 * reported, never thrown.
 */
@Injectable()
export class ProxyCredentials {
  private readonly origin: string;

  constructor(
    @Inject(Authenticator) private readonly authenticator: Authenticator,
    @Inject(SessionsService) private readonly sessions: SessionsService,
    @Inject(SERVICE_CONTEXT) ctx: ServiceContext,
  ) {
    this.origin = new URL(ctx.config.publicUrl).origin;
  }

  readonly of = async (req: IncomingMessage): Promise<Credentials> => {
    const header = req.headers.authorization;
    try {
      if (header) {
        const m = /^Bearer\s+(\S+)$/i.exec(header);
        if (!m)
          return { kind: 'invalid', detail: 'malformed Authorization header: expected "Bearer <token>"' };
        return { kind: 'principal', principal: await this.authenticator.authenticate(m[1]!) };
      }
      const session = cookie(req, SESSION_COOKIE);
      if (!session) return { kind: 'none' };
      const origin = req.headers.origin;
      if (origin && origin !== this.origin && origin !== `http://${req.headers.host ?? ''}`)
        return { kind: 'invalid', detail: `requests from ${origin} may not use the session cookie` };
      return { kind: 'principal', principal: await this.sessions.authenticate(session) };
    } catch (err) {
      if (err instanceof ApiError && err.status === 401) return { kind: 'invalid', detail: err.detail };
      throw err;
    }
  };
}
