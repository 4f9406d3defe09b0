import { Logger } from '@nestjs/common';
import { createHash } from 'node:crypto';
import { ServerResponse, type IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import { ProxyServer } from 'http-proxy-3';
import { APP_KEY_HEADER } from '#libs/contracts';
import { toErrorBody } from '#libs/http';
import { interactiveAppKey, type MasterKey } from '#libs/secrets';
import type { InteractiveApp } from '../../../execution/src/run/read-models/runs.queries.js';
import type { JobRow } from '../../../scheduling/src/job/read-models/jobs.queries.js';
import type { Principal } from '../auth/authenticator.js';
import { hashLinkToken, type InteractiveService } from './interactive.service.js';
import type { LinkRevocations } from './link-revocations.js';
import { startingPage } from './starting-page.js';

const logger = new Logger('interactive');
/** How long a visit's authorization and a running app's address are reused (ms). */
const CACHE_MS = 1000;

/** `/i/<job id>/…` (members) and `/p/<token>/…` (a public link). */
const ROUTE = /^\/(i|p)\/([^/?#]+)(\/[^?#]*)?(\?.*)?$/;
/** The gateway's own route beside every app (never forwarded): where the starting page polls. */
export const STATUS_PATH = '/.runway/status';
/** Runway's own cookies: never shown to an app. */
const RUNWAY_COOKIE = /^runway_/;

/** Who is asking, from the request's credentials: a principal, nobody, or a credential that does not work. */
export type Credentials =
  { kind: 'principal'; principal: Principal } | { kind: 'none' } | { kind: 'invalid'; detail: string };

export interface AppProxyDeps {
  service: InteractiveService;
  revocations: LinkRevocations;
  credentials: (req: IncomingMessage) => Promise<Credentials>;
  /** The master key (read when the first request is forwarded: a gateway that never proxies never loads it). */
  masterKey: () => MasterKey;
}

interface Visit {
  job: JobRow;
  /** `/i/<id>` or `/p/<token>`: the public prefix the visitor uses. */
  prefix: string;
  /** The rest of the path after the prefix (starts with `/`) and the query. */
  rest: string;
  query: string;
  /** Set for a public link: the socket is tracked so revocation ends it. */
  linkHash?: string;
}

type Refusal = { status: number; detail: string; location?: string };

const wantsHtml = (req: IncomingMessage): boolean => /\btext\/html\b/.test(req.headers.accept ?? '');

/** The path segments must not climb out of the app's base path (`..`, also percent-encoded). */
export function safeRest(rest: string): boolean {
  for (const seg of rest.split('/')) {
    let s: string;
    try {
      s = decodeURIComponent(seg);
    } catch {
      return false;
    }
    if (s === '..' || s.includes('/') || s.includes('\\')) return false;
  }
  return true;
}

export function stripCookies(header: string | undefined): string | undefined {
  if (!header) return undefined;
  const kept = header
    .split(';')
    .map((c) => c.trim())
    .filter((c) => c.length > 0 && !RUNWAY_COOKIE.test(c.split('=')[0] ?? ''));
  return kept.length > 0 ? kept.join('; ') : undefined;
}

function sendJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'cache-control': 'no-store',
    ...headers,
  });
  res.end(JSON.stringify(body));
}

function sendError(
  res: ServerResponse,
  status: number,
  detail: string,
  headers: Record<string, string> = {},
): void {
  sendJson(res, status, { status_code: status, detail, extra: {} }, headers);
}

/** An HTTP answer on a socket that asked for an upgrade, then the socket closed. */
function refuseUpgrade(socket: Socket, status: number, detail: string): void {
  const body = JSON.stringify({ status_code: status, detail, extra: {} });
  socket.end(
    `HTTP/1.1 ${status} ${status === 401 ? 'Unauthorized' : status === 404 ? 'Not Found' : 'Service Unavailable'}\r\n` +
      `content-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
  );
}

/**
 * The interactive proxy: `/i/<job id>/…` for signed-in members of the job's workspace (session
 * cookie or bearer token), `/p/<token>/…` for anyone holding a public link, both HTTP and
 * WebSocket, streamed both ways (http-proxy-3 pipes; nothing is buffered), to the address of the
 * job's running app as the runs read model has it (docs/interactive.md). Runway's cookies and
 * Authorization header never reach the app; the worker endpoint gets the run's app key instead.
 * A visit while no app answers gets the starting page (and wakes the app).
 */
export class AppProxy {
  private readonly proxy: ProxyServer;
  /** What a forwarded request was rewritten from: redirects of the app are mapped back to the visitor's prefix. */
  private readonly visits = new Map<string, { visit: Visit; at: number }>();
  private readonly apps = new Map<string, { app: InteractiveApp; at: number }>();
  private readonly forwarded = new WeakMap<
    IncomingMessage,
    { prefix: string; basePath: string; origin: string; jobId: string }
  >();

  constructor(private readonly deps: AppProxyDeps) {
    this.proxy = new ProxyServer({ xfwd: true, ws: true, proxyTimeout: 0 });
    this.proxy.on('proxyRes', (proxyRes, req) => {
      // An app may not set (nor clear) Runway's own cookies on the gateway's origin.
      const set = proxyRes.headers['set-cookie'];
      if (set) proxyRes.headers['set-cookie'] = set.filter((c) => !RUNWAY_COOKIE.test(c.trim()));
      // marimo redirects to absolute worker URLs (`http://<worker>/i/<job>/`): back to the visitor's prefix.
      const location = proxyRes.headers.location;
      const f = this.forwarded.get(req);
      if (location && f) {
        const path = location.startsWith(f.origin) ? location.slice(f.origin.length) : location;
        if (path === f.basePath || path.startsWith(`${f.basePath}/`) || path.startsWith(`${f.basePath}?`))
          proxyRes.headers.location = `${f.prefix}${path.slice(f.basePath.length)}`;
      }
    });
    this.proxy.on('error', (err, req, res) => {
      logger.debug(`proxy: ${err.message}`);
      // The app is gone (stopped, its worker lost): look it up again next time.
      const f = this.forwarded.get(req);
      if (f) this.apps.delete(f.jobId);
      if (res instanceof ServerResponse) {
        if (!res.headersSent) sendError(res, 502, 'the app did not answer: reload to try again');
        else res.destroy();
      } else res.destroy();
    });
  }

  /** A request the proxy does not handle (the API, the dashboard) on a connection that may have served a link. */
  passOver(req: IncomingMessage): void {
    this.deps.revocations.release(req.socket);
  }

  /** Whether a request path is the proxy's (`/i/…`, `/p/…`). */
  static owns(url: string | undefined): boolean {
    return url !== undefined && (url.startsWith('/i/') || url.startsWith('/p/'));
  }

  /** HTTP requests under `/i/` and `/p/` (Express middleware, before any body parser). */
  async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    try {
      const m = ROUTE.exec(req.url ?? '');
      if (!m) return sendError(res, 404, 'not found');
      if (m[3] === undefined) {
        // `/i/<job>` → `/i/<job>/`: relative URLs of the app resolve under its prefix.
        res.writeHead(308, { location: `/${m[1]}/${m[2]}/${m[4] ?? ''}` });
        res.end();
        return;
      }
      const visit = await this.resolveCached(req, m);
      if ('status' in visit) {
        if (visit.location) {
          res.writeHead(visit.status, { location: visit.location, 'cache-control': 'no-store' });
          res.end();
          return;
        }
        return sendError(res, visit.status, visit.detail);
      }
      if (visit.linkHash) this.deps.revocations.track(visit.linkHash, req.socket);
      else this.deps.revocations.release(req.socket);
      if (visit.rest === STATUS_PATH) {
        const s = await this.deps.service.status(visit.job, 'stopped');
        return sendJson(res, 200, {
          job_id: s.jobId,
          run_id: s.runId,
          status: s.status,
          ready: s.ready,
          failed: s.failed,
          message: s.message,
        });
      }
      const app = await this.appOf(visit.job);
      if (app?.app) {
        this.prepare(req, visit, app.app.basePath, app.runId);
        this.forwarded.set(req, {
          prefix: visit.prefix,
          basePath: app.app.basePath,
          origin: `http://${app.app.host}:${app.app.port}`,
          jobId: visit.job.id,
        });
        this.proxy.web(req, res, { target: { host: app.app.host, port: app.app.port } });
        return;
      }
      if ((req.method === 'GET' || req.method === 'HEAD') && wantsHtml(req)) {
        const s = await this.deps.service.status(visit.job, 'always');
        if (s.ready) {
          // Woke and answered at once (another visitor's wake): straight to it.
          res.writeHead(307, { location: req.url ?? '/', 'cache-control': 'no-store' });
          res.end();
          return;
        }
        res.writeHead(503, {
          'content-type': 'text/html; charset=utf-8',
          'cache-control': 'no-store',
          'retry-after': '2',
        });
        res.end(
          req.method === 'HEAD'
            ? undefined
            : startingPage({
                jobName: visit.job.name,
                statusPath: `${visit.prefix}${STATUS_PATH}`,
                status: s.status,
              }),
        );
        return;
      }
      sendError(
        res,
        503,
        `the app of job ${visit.job.name} is not running${app ? ` (run #${app.number} is ${app.status})` : ''}: open ${visit.prefix}/ in a browser to start it`,
        { 'retry-after': '2' },
      );
    } catch (err) {
      const body = toErrorBody(err);
      if (body.status_code >= 500) logger.error(`proxy ${req.method} ${req.url}: ${String(err)}`);
      if (!res.headersSent) sendJson(res, body.status_code, body);
      else res.destroy();
    }
  }

  /** WebSocket upgrades under `/i/` and `/p/` (the HTTP server's `upgrade` event). */
  async upgrade(req: IncomingMessage, socket: Socket, head: Buffer): Promise<void> {
    socket.on('error', () => socket.destroy());
    try {
      const m = ROUTE.exec(req.url ?? '');
      if (!m || m[3] === undefined) return refuseUpgrade(socket, 404, 'not found');
      const visit = await this.resolveCached(req, m);
      if ('status' in visit)
        return refuseUpgrade(socket, visit.status === 302 ? 401 : visit.status, visit.detail);
      if (visit.linkHash) this.deps.revocations.track(visit.linkHash, socket);
      const app = await this.appOf(visit.job);
      if (!app?.app) return refuseUpgrade(socket, 503, `the app of job ${visit.job.name} is not running`);
      this.prepare(req, visit, app.app.basePath, app.runId);
      this.forwarded.set(req, {
        prefix: visit.prefix,
        basePath: app.app.basePath,
        origin: `http://${app.app.host}:${app.app.port}`,
        jobId: visit.job.id,
      });
      this.proxy.ws(req, socket, head, { target: { host: app.app.host, port: app.app.port } });
    } catch (err) {
      const body = toErrorBody(err);
      refuseUpgrade(socket, body.status_code, body.detail);
    }
  }

  /**
   * resolve, remembered for CACHE_MS per credential and job (an app's page loads dozens of assets
   * and API calls): a revoked token, a removed member or a deactivated job still get through for at
   * most that long. Public links are checked against the revocations on every request.
   */
  private async resolveCached(req: IncomingMessage, m: RegExpExecArray): Promise<Visit | Refusal> {
    const credential =
      m[1] === 'p'
        ? ''
        : (req.headers.authorization ??
          /(?:^|;\s*)runway_session=([^;]*)/.exec(req.headers.cookie ?? '')?.[1] ??
          '');
    if (m[1] === 'i' && !credential) return this.resolve(req, m);
    const key = `${m[1]}|${m[2]}|${createHash('sha256').update(credential).digest('base64')}|${req.headers.origin ?? ''}`;
    const now = Date.now();
    const hit = this.visits.get(key);
    let visit: Visit | Refusal;
    if (hit && now - hit.at < CACHE_MS) visit = hit.visit;
    else {
      visit = await this.resolve(req, m);
      if ('status' in visit) return visit;
      if (this.visits.size > 10_000) this.visits.clear();
      this.visits.set(key, { visit, at: now });
    }
    if ('status' in visit) return visit;
    if (visit.linkHash && this.deps.revocations.isRevoked(visit.linkHash)) {
      this.visits.delete(key);
      return { status: 404, detail: 'no such public link (it may have been revoked)' };
    }
    // The same job for another path of this visit.
    const rest = m[3] ?? '/';
    if (!safeRest(rest)) return { status: 400, detail: 'the path may not leave the app (no ".." segments)' };
    return { ...visit, rest, query: m[4] ?? '' };
  }

  /** The job's app, a running one remembered for CACHE_MS (a stopped app is looked up every time). */
  private async appOf(job: JobRow) {
    const hit = this.apps.get(job.id);
    const now = Date.now();
    if (hit && now - hit.at < CACHE_MS) return hit.app;
    const app = await this.deps.service.app(job);
    if (app?.app) {
      if (this.apps.size > 10_000) this.apps.clear();
      this.apps.set(job.id, { app, at: now });
    } else this.apps.delete(job.id);
    return app;
  }

  /** Who may see which job's app, or why not (401 / redirect to sign in / 404). */
  private async resolve(req: IncomingMessage, m: RegExpExecArray): Promise<Visit | Refusal> {
    const id = m[2] ?? '';
    const rest = m[3] ?? '/';
    const query = m[4] ?? '';
    if (!safeRest(rest)) return { status: 400, detail: 'the path may not leave the app (no ".." segments)' };
    if (m[1] === 'p') {
      const job = await this.deps.service.jobForToken(id);
      const hash = hashLinkToken(id);
      if (!job || this.deps.revocations.isRevoked(hash))
        return { status: 404, detail: 'no such public link (it may have been revoked)' };
      return { job, prefix: `/p/${id}`, rest, query, linkHash: hash };
    }
    const who = await this.deps.credentials(req);
    if (who.kind !== 'principal') {
      if (wantsHtml(req) && (req.method === 'GET' || req.method === 'HEAD'))
        return {
          status: 302,
          detail: 'sign in first',
          location: `/signin?next=${encodeURIComponent(req.url ?? '/')}`,
        };
      return {
        status: 401,
        detail:
          who.kind === 'invalid'
            ? who.detail
            : 'sign in (session cookie) or send "Authorization: Bearer <token>" to open this app',
      };
    }
    const job = await this.deps.service.jobForMember(who.principal, id);
    if (!job) return { status: 404, detail: `interactive job ${id} not found` };
    return { job, prefix: `/i/${id}`, rest, query };
  }

  /** Rewrites the request for the worker endpoint: its path under the app's base path, the app key, no Runway credentials. */
  private prepare(req: IncomingMessage, visit: Visit, basePath: string, runId: string): void {
    req.url = `${basePath}${visit.rest}${visit.query}`;
    delete req.headers.authorization;
    const cookie = stripCookies(req.headers.cookie);
    if (cookie === undefined) delete req.headers.cookie;
    else req.headers.cookie = cookie;
    req.headers[APP_KEY_HEADER] = interactiveAppKey(this.deps.masterKey(), runId);
  }

  close(): void {
    this.proxy.close();
  }
}
