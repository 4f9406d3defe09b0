import { timingSafeEqual } from 'node:crypto';
import {
  createServer,
  request as httpRequest,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http';
import { connect, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { APP_KEY_HEADER } from '#libs/contracts';

/** Where the app itself answers: a unix socket (the sandbox's bridge) or a loopback TCP port (RUNWAY_SANDBOX=off). */
export type AppTarget = { socketPath: string } | { host: string; port: number };

export interface AppEndpointOptions {
  target: AppTarget;
  /** The value of `x-runway-app-key` every request must carry (interactiveAppKey of the run). */
  key: string;
  /** Path prefix of the app at this endpoint (`/i/<jobId>`); other paths are 404. */
  basePath: string;
  /** Strip `basePath` before forwarding (plain HTTP apps serve at their root; marimo knows its base URL). */
  stripBasePath: boolean;
  bindHost: string;
}

/** HTTP headers that describe one hop, not the message (RFC 9110 §7.6.1). */
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'te',
  'trailer',
]);

/**
 * The worker's TCP endpoint for one interactive app (docs/interactive.md): it checks the app key,
 * forwards HTTP requests and WebSocket upgrades to the app (and nowhere else), streaming both ways,
 * and measures activity: the app is busy while a request is in flight or an upgraded connection is
 * open. Idle keep-alive connections do not count.
 */
export class AppEndpoint {
  private server: Server | undefined;
  private readonly key: Buffer;
  private busy = 0;
  private lastActive = Date.now();
  private readonly open = new Set<Duplex>();
  port = 0;

  constructor(private readonly opts: AppEndpointOptions) {
    this.key = Buffer.from(opts.key);
  }

  /** Milliseconds since the app was last busy (0 while it is). */
  idleForMs(now = Date.now()): number {
    return this.busy > 0 ? 0 : now - this.lastActive;
  }

  /** Starts the idle time afresh (the app just became reachable). */
  touch(): void {
    this.lastActive = Date.now();
  }

  /** Requests in flight plus open WebSockets. */
  get activeConnections(): number {
    return this.busy;
  }

  async listen(): Promise<number> {
    const server = createServer({ requestTimeout: 0, headersTimeout: 60_000 }, (req, res) =>
      this.onRequest(req, res),
    );
    server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) =>
      this.onUpgrade(req, socket, head),
    );
    server.on('connection', (s: Socket) => {
      this.open.add(s);
      s.on('close', () => this.open.delete(s));
    });
    // An app endpoint's clients are gateways: keep-alive sockets may idle, they do not keep the app busy.
    server.keepAliveTimeout = 30_000;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, this.opts.bindHost, () => {
        server.off('error', reject);
        resolve();
      });
    });
    this.server = server;
    const a = server.address();
    this.port = a !== null && typeof a === 'object' ? a.port : 0;
    return this.port;
  }

  /** Stops listening and drops every connection (the app is going away). */
  async close(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    const closed = new Promise<void>((r) => server.close(() => r()));
    for (const s of this.open) s.destroy();
    this.open.clear();
    server.closeAllConnections();
    await closed;
  }

  private begin(): () => void {
    this.busy++;
    this.lastActive = Date.now();
    let done = false;
    return () => {
      if (done) return;
      done = true;
      this.busy--;
      this.lastActive = Date.now();
    };
  }

  private authorized(req: IncomingMessage): boolean {
    const given = req.headers[APP_KEY_HEADER];
    if (typeof given !== 'string') return false;
    const g = Buffer.from(given);
    return g.length === this.key.length && timingSafeEqual(g, this.key);
  }

  /** The path to forward, or undefined when it is not under the base path. */
  private pathOf(url: string | undefined): string | undefined {
    const u = url ?? '/';
    const base = this.opts.basePath;
    if (u !== base && !u.startsWith(`${base}/`) && !u.startsWith(`${base}?`)) return undefined;
    if (!this.opts.stripBasePath) return u;
    const rest = u.slice(base.length);
    return rest.startsWith('/') ? rest : `/${rest}`;
  }

  private forwardHeaders(req: IncomingMessage, upgrade: boolean): Record<string, string | string[]> {
    const out: Record<string, string | string[]> = {};
    for (const [k, v] of Object.entries(req.headers)) {
      if (v === undefined || k === APP_KEY_HEADER) continue;
      if (!upgrade && HOP_BY_HOP.has(k)) continue;
      out[k] = v;
    }
    return out;
  }

  private onRequest(req: IncomingMessage, res: ServerResponse): void {
    if (!this.authorized(req)) {
      res.writeHead(403, { 'content-type': 'text/plain' }).end('forbidden\n');
      return;
    }
    const path = this.pathOf(req.url);
    if (path === undefined) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
      return;
    }
    const end = this.begin();
    res.on('close', end);
    const t = this.opts.target;
    const upstream = httpRequest({
      ...('socketPath' in t ? { socketPath: t.socketPath } : { host: t.host, port: t.port }),
      method: req.method,
      path,
      headers: this.forwardHeaders(req, false),
    });
    upstream.on('response', (up) => {
      const headers: Record<string, string | string[]> = {};
      for (const [k, v] of Object.entries(up.headers))
        if (v !== undefined && !HOP_BY_HOP.has(k)) headers[k] = v;
      res.writeHead(up.statusCode ?? 502, up.statusMessage, headers);
      up.pipe(res);
      up.on('error', () => res.destroy());
    });
    upstream.on('error', (err) => {
      if (!res.headersSent)
        res.writeHead(502, { 'content-type': 'text/plain' }).end(`the app does not answer: ${err.message}\n`);
      else res.destroy();
    });
    req.pipe(upstream);
    req.on('error', () => upstream.destroy());
    res.on('close', () => {
      if (!res.writableFinished) upstream.destroy();
    });
  }

  private onUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const refuse = (status: string) => {
      socket.end(`HTTP/1.1 ${status}\r\nconnection: close\r\ncontent-length: 0\r\n\r\n`);
    };
    if (!this.authorized(req)) return refuse('403 Forbidden');
    const path = this.pathOf(req.url);
    if (path === undefined) return refuse('404 Not Found');
    const end = this.begin();
    const t = this.opts.target;
    const up = 'socketPath' in t ? connect({ path: t.socketPath }) : connect({ host: t.host, port: t.port });
    this.open.add(up);
    const close = () => {
      end();
      this.open.delete(up);
      up.destroy();
      socket.destroy();
    };
    up.on('error', close);
    socket.on('error', close);
    up.on('close', close);
    socket.on('close', close);
    up.on('connect', () => {
      const lines = [`${req.method ?? 'GET'} ${path} HTTP/1.1`];
      const raw = req.rawHeaders;
      for (let i = 0; i + 1 < raw.length; i += 2) {
        if (raw[i]!.toLowerCase() === APP_KEY_HEADER) continue;
        lines.push(`${raw[i]}: ${raw[i + 1]}`);
      }
      up.write(`${lines.join('\r\n')}\r\n\r\n`);
      if (head.length > 0) up.write(head);
      up.pipe(socket);
      socket.pipe(up);
    });
  }
}

/** One GET to the app itself (not through the endpoint): whether it answers HTTP (any status but 502/503/504). */
export function probeApp(target: AppTarget, path: string, timeoutMs = 2_000): Promise<boolean> {
  return new Promise((resolve) => {
    const req = httpRequest(
      {
        ...('socketPath' in target
          ? { socketPath: target.socketPath }
          : { host: target.host, port: target.port }),
        method: 'GET',
        path,
        timeout: timeoutMs,
        headers: { accept: 'text/html', 'user-agent': 'runway-worker-probe' },
      },
      (res) => {
        res.resume();
        // Any answer but "not there yet" (a gateway or server still starting: 502, 503, 504).
        resolve(![502, 503, 504].includes(res.statusCode ?? 503));
      },
    );
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', () => resolve(false));
    req.end();
  });
}
